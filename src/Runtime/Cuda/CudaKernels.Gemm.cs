using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

public sealed partial class CudaKernels
{
    /// <summary>
    /// See <see cref="IKernels.Gemm"/>. A and B: BFloat16, Half or Float32 (the same); C: their dtype or Float32;
    /// bias and aux: C's dtype; biasGrad: Float32. Epilogues run fused in cuBLASLt; where cuBLASLt offers no fused
    /// kernel for a problem (<see cref="CublasLtGemm.UnfusedPlanCount"/>), the same result is computed by a plain GEMM
    /// followed by the matching libmpnative.so kernels.
    /// </summary>
    public void Gemm(Tensor c, Tensor a, Tensor b, int m, int n, int k, bool transA, bool transB, float alpha = 1f,
        float beta = 0f, GemmEpilogue epilogue = GemmEpilogue.None, Tensor? bias = null, Tensor? aux = null,
        Tensor? biasGrad = null)
    {
        Positive(m, nameof(m));
        Positive(n, nameof(n));
        Positive(k, nameof(k));
        var ta = Arg(a, nameof(a), (long)m * k, transA ? "k x m" : "m x k");
        if (ta.DType is not (DType.BFloat16 or DType.Float16 or DType.Float32))
        {
            throw new ArgumentException($"a has dtype {ta.DType} but GEMM inputs must be BFloat16, Float16 or Float32", nameof(a));
        }
        var tb = Like(b, nameof(b), ta, (long)k * n, transB ? "n x k" : "k x n");
        var tc = Arg(c, nameof(c), (long)m * n, "m x n");
        if (tc.DType != ta.DType && tc.DType != DType.Float32)
        {
            throw new ArgumentException($"c has dtype {tc.DType} but must be {ta.DType} (like a) or Float32", nameof(c));
        }
        CheckEpilogue(epilogue, beta, bias, aux, biasGrad);
        var tbias = bias is null ? null : Like(bias, nameof(bias), tc, n, "n");
        var taux = aux is null ? null : Like(aux, nameof(aux), tc, (long)m * n, "m x n");
        var tgrad = biasGrad is null ? null
            : Arg(biasGrad, nameof(biasGrad), Grad, epilogue == GemmEpilogue.BiasGradA ? m : n,
                epilogue == GemmEpilogue.BiasGradA ? "m" : "n");
        if (Overlaps(tc, ta) || Overlaps(tc, tb))
        {
            throw new ArgumentException("c must not overlap a or b", nameof(c));
        }
        bool auxIsC = taux is not null && taux.Pointer == tc.Pointer && taux.Bytes == tc.Bytes;
        if (taux is not null && Overlaps(taux, tc) && !(epilogue == GemmEpilogue.DGelu && auxIsC))
        {
            throw new ArgumentException("aux must not overlap c (except as the same elements with DGelu)", nameof(aux));
        }
        Begin();
        var gemm = _backend.Gemm;
        // In place (aux = c) the epilogue reads what it overwrites: only the unfused form is sure to be right.
        bool done = !auxIsC && epilogue switch
        {
            GemmEpilogue.None => gemm.TryRun(tc, ta, tb, m, n, k, transA, transB, alpha, beta, CublasLt.EpilogueDefault, null, null),
            GemmEpilogue.Bias => gemm.TryRun(tc, ta, tb, m, n, k, transA, transB, alpha, beta, CublasLt.EpilogueBias, tbias, null),
            GemmEpilogue.BiasGelu => gemm.TryRun(tc, ta, tb, m, n, k, transA, transB, alpha, 0f,
                taux is null ? CublasLt.EpilogueGeluBias : CublasLt.EpilogueGeluAuxBias, tbias, taux),
            GemmEpilogue.Gelu => gemm.TryRun(tc, ta, tb, m, n, k, transA, transB, alpha, 0f,
                taux is null ? CublasLt.EpilogueGelu : CublasLt.EpilogueGeluAux, null, taux),
            GemmEpilogue.DGelu => gemm.TryRun(tc, ta, tb, m, n, k, transA, transB, alpha, 0f,
                tgrad is null ? CublasLt.EpilogueDGelu : CublasLt.EpilogueDGeluBGrad, tgrad, taux),
            GemmEpilogue.BiasGradA => gemm.TryRun(tc, ta, tb, m, n, k, transA, transB, alpha, beta, CublasLt.EpilogueBGradB,
                tgrad, null),
            _ => throw new ArgumentOutOfRangeException(nameof(epilogue), epilogue, "unknown epilogue"),
        };
        if (!done)
        {
            Unfused(tc, ta, tb, m, n, k, transA, transB, alpha, beta, epilogue, tbias, taux, tgrad);
        }
    }

    private static void CheckEpilogue(GemmEpilogue epilogue, float beta, Tensor? bias, Tensor? aux, Tensor? biasGrad)
    {
        bool wantsBias = epilogue is GemmEpilogue.Bias or GemmEpilogue.BiasGelu;
        bool takesAux = epilogue is GemmEpilogue.BiasGelu or GemmEpilogue.Gelu or GemmEpilogue.DGelu;
        bool takesBiasGrad = epilogue is GemmEpilogue.DGelu or GemmEpilogue.BiasGradA;
        if (wantsBias != (bias is not null))
        {
            throw new ArgumentException(wantsBias ? $"epilogue {epilogue} needs bias" : $"epilogue {epilogue} takes no bias",
                nameof(bias));
        }
        if (!takesAux && aux is not null)
        {
            throw new ArgumentException($"epilogue {epilogue} takes no aux", nameof(aux));
        }
        if (epilogue == GemmEpilogue.DGelu && aux is null)
        {
            throw new ArgumentException("epilogue DGelu needs aux (the pre-activation kept by BiasGelu or Gelu)", nameof(aux));
        }
        if (!takesBiasGrad && biasGrad is not null)
        {
            throw new ArgumentException($"epilogue {epilogue} takes no biasGrad", nameof(biasGrad));
        }
        if (epilogue == GemmEpilogue.BiasGradA && biasGrad is null)
        {
            throw new ArgumentException("epilogue BiasGradA needs biasGrad", nameof(biasGrad));
        }
        if (epilogue is GemmEpilogue.BiasGelu or GemmEpilogue.Gelu or GemmEpilogue.DGelu && beta != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(beta), beta, $"epilogue {epilogue} needs beta = 0");
        }
    }

    /// <summary>The epilogue as separate kernels after a plain GEMM, for problems cuBLASLt has no fused kernel for.</summary>
    private void Unfused(CudaTensor c, CudaTensor a, CudaTensor b, int m, int n, int k, bool transA, bool transB, float alpha,
        float beta, GemmEpilogue epilogue, CudaTensor? bias, CudaTensor? aux, CudaTensor? biasGrad)
    {
        var gemm = _backend.Gemm;
        long count = (long)m * n;
        int dtype = NativeDType.Of(c.DType);
        switch (epilogue)
        {
            case GemmEpilogue.Bias:
                gemm.TryRun(c, a, b, m, n, k, transA, transB, alpha, beta, CublasLt.EpilogueDefault, null, null);
                Native(MpNative.AddBias(c.Pointer, bias!.Pointer, m, n, dtype, Stream), $"mp_add_bias({m} x {n})");
                break;
            case GemmEpilogue.BiasGelu:
            case GemmEpilogue.Gelu:
            {
                using var scratch = aux is null ? _backend.Allocate(c.DType, count) : null;
                var z = aux ?? scratch!;
                gemm.TryRun(z, a, b, m, n, k, transA, transB, alpha, 0f, CublasLt.EpilogueDefault, null, null);
                if (bias is not null)
                {
                    Native(MpNative.AddBias(z.Pointer, bias.Pointer, m, n, dtype, Stream), $"mp_add_bias({m} x {n})");
                }
                Native(MpNative.GeluFwd(c.Pointer, z.Pointer, count, dtype, Stream), $"mp_gelu_fwd({count})");
                break;
            }
            case GemmEpilogue.DGelu:
            {
                using var product = _backend.Allocate(c.DType, count);
                using var preActivation = aux!.Pointer == c.Pointer ? _backend.Allocate(c.DType, count) : null;
                if (preActivation is not null)
                {
                    Status.CheckCuda(CudaRuntime.MemcpyAsync(preActivation.Pointer, aux.Pointer, (nuint)aux.Bytes,
                        CudaRuntime.MemcpyDeviceToDevice, Stream), $"cudaMemcpyAsync(aux, {aux.Bytes} bytes)");
                }
                gemm.TryRun(product, a, b, m, n, k, transA, transB, alpha, 0f, CublasLt.EpilogueDefault, null, null);
                Native(MpNative.GeluBwd(c.Pointer, product.Pointer, (preActivation ?? aux).Pointer, count, dtype, Stream),
                    $"mp_gelu_bwd({count})");
                if (biasGrad is not null)
                {
                    ZeroThenBiasGrad(biasGrad, c, m, n);
                }
                break;
            }
            case GemmEpilogue.BiasGradA:
                gemm.TryRun(c, a, b, m, n, k, transA, transB, alpha, beta, CublasLt.EpilogueDefault, null, null);
                if (transA)
                {
                    // A is stored [k, m]: the sums over k are its column sums.
                    ZeroThenBiasGrad(biasGrad!, a, k, m);
                }
                else
                {
                    // A is stored [m, k]: the sums over k are its row sums, A times a vector of ones.
                    using var ones = _backend.Allocate(a.DType, k);
                    Native(MpNative.Fill(ones.Pointer, k, 1.0, NativeDType.Of(a.DType), Stream), $"mp_fill({k})");
                    gemm.TryRun(biasGrad!, a, ones, m, 1, k, false, false, 1f, 0f, CublasLt.EpilogueDefault, null, null);
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(epilogue), epilogue, "no unfused form");
        }
    }

    private static bool Overlaps(CudaTensor x, CudaTensor y) =>
        x.Bytes > 0 && y.Bytes > 0 && x.Pointer < y.Pointer + (nint)y.Bytes && y.Pointer < x.Pointer + (nint)x.Bytes;

    private void ZeroThenBiasGrad(CudaTensor biasGrad, CudaTensor source, int rows, int cols)
    {
        Status.CheckCuda(CudaRuntime.MemsetAsync(biasGrad.Pointer, 0, (nuint)biasGrad.Bytes, Stream),
            $"cudaMemsetAsync({biasGrad.Bytes} bytes)");
        Native(MpNative.BiasGrad(biasGrad.Pointer, source.Pointer, rows, cols, NativeDType.Of(source.DType), Stream),
            $"mp_bias_grad({rows} x {cols})");
    }
}
