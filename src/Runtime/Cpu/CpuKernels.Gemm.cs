using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace ModelParallel.Runtime.Cpu;

public sealed partial class CpuKernels
{
    /// <summary>Bytes of op(B)^T rows kept hot while a block of C's columns is computed.</summary>
    private const int GemmColumnBlockBytes = 256 * 1024;

    public void Gemm(Tensor c, Tensor a, Tensor b, int m, int n, int k, bool transA, bool transB,
        float alpha = 1f, float beta = 0f, GemmEpilogue epilogue = GemmEpilogue.None,
        Tensor? bias = null, Tensor? aux = null, Tensor? biasGrad = null)
    {
        Positive(m, nameof(m));
        Positive(n, nameof(n));
        Positive(k, nameof(k));
        var ct = Check(c, nameof(c), (long)m * n, $"m*n = {m}*{n}");
        var at = Check(a, nameof(a), (long)m * k, $"m*k = {m}*{k}");
        var bt = Check(b, nameof(b), (long)k * n, $"k*n = {k}*{n}");
        if (ct.Overlaps(at) || ct.Overlaps(bt))
        {
            throw new ArgumentException("c must not overlap a or b", nameof(c));
        }

        bool usesBias = epilogue is GemmEpilogue.Bias or GemmEpilogue.BiasGelu;
        bool usesAux = epilogue is GemmEpilogue.BiasGelu or GemmEpilogue.Gelu or GemmEpilogue.DGelu;
        bool usesBiasGrad = epilogue is GemmEpilogue.DGelu or GemmEpilogue.BiasGradA;
        if (!Enum.IsDefined(epilogue))
        {
            throw new ArgumentOutOfRangeException(nameof(epilogue), epilogue, "unknown GEMM epilogue");
        }
        if (epilogue is GemmEpilogue.BiasGelu or GemmEpilogue.Gelu or GemmEpilogue.DGelu && beta != 0f)
        {
            throw new ArgumentException($"beta must be 0 with the {epilogue} epilogue, not {beta}", nameof(beta));
        }
        CpuTensor? biasT = Optional(bias, nameof(bias), usesBias, epilogue is GemmEpilogue.Bias or GemmEpilogue.BiasGelu,
            epilogue, n, $"n = {n}");
        CpuTensor? auxT = Optional(aux, nameof(aux), usesAux, epilogue == GemmEpilogue.DGelu, epilogue, (long)m * n,
            $"m*n = {m}*{n}");
        int biasGradCount = epilogue == GemmEpilogue.BiasGradA ? m : n;
        CpuTensor? biasGradT = Optional(biasGrad, nameof(biasGrad), usesBiasGrad, epilogue == GemmEpilogue.BiasGradA,
            epilogue, biasGradCount, epilogue == GemmEpilogue.BiasGradA ? $"m = {m}" : $"n = {n}");
        if (auxT is not null && (auxT.Overlaps(ct) && !(epilogue == GemmEpilogue.DGelu && auxT.SameElements(ct))))
        {
            throw new ArgumentException("aux must not overlap c (except as the same tensor with DGelu)", nameof(aux));
        }

        if (IsDouble)
        {
            Gemm<double>(ct, at, bt, m, n, k, transA, transB, alpha, beta, epilogue, biasT, auxT, biasGradT);
        }
        else
        {
            Gemm<float>(ct, at, bt, m, n, k, transA, transB, alpha, beta, epilogue, biasT, auxT, biasGradT);
        }
    }

    /// <summary>Checks an epilogue operand: must be null when unused, present when required.</summary>
    private CpuTensor? Optional(Tensor? tensor, string name, bool used, bool required, GemmEpilogue epilogue,
        long count, string countFormula)
    {
        if (!used)
        {
            return tensor is null
                ? null
                : throw new ArgumentException($"{name} is not used by the {epilogue} epilogue and must be null", name);
        }
        if (tensor is null)
        {
            return required ? throw new ArgumentNullException(name, $"the {epilogue} epilogue needs {name}") : null;
        }
        return Check(tensor, name, count, countFormula);
    }

    private static void Gemm<T>(CpuTensor c, CpuTensor a, CpuTensor b, int m, int n, int k, bool transA, bool transB,
        float alphaValue, float betaValue, GemmEpilogue epilogue, CpuTensor? bias, CpuTensor? aux, CpuTensor? biasGrad)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T alpha = T.CreateChecked(alphaValue), beta = T.CreateChecked(betaValue);
        // Rows of op(A) ([m, k]) and rows of op(B)^T ([n, k]) so that every element of C is one contiguous dot product.
        var (aRows, aOffset) = transA ? (Transposed(a.Span<T>(), k, m), 0) : ((T[])a.Storage, a.Offset);
        var (bCols, bOffset) = transB ? ((T[])b.Storage, b.Offset) : (Transposed(b.Span<T>(), k, n), 0);
        int columnBlock = Math.Max(4, GemmColumnBlockBytes / (k * Unsafe.SizeOf<T>()));

        For(m, (long)n * k, (rowStart, rowEnd) =>
        {
            ReadOnlySpan<T> opA = aRows.AsSpan(aOffset, m * k), opBT = bCols.AsSpan(bOffset, n * k);
            Span<T> cs = c.Span<T>();
            ReadOnlySpan<T> biasS = bias is null ? default : bias.Span<T>();
            Span<T> auxS = aux is null ? default : aux.Span<T>();
            for (int j0 = 0; j0 < n; j0 += columnBlock)
            {
                int j1 = Math.Min(n, j0 + columnBlock);
                for (int i = rowStart; i < rowEnd; i++)
                {
                    var aRow = opA.Slice(i * k, k);
                    for (int j = j0; j < j1; j++)
                    {
                        T p = alpha * TensorPrimitives.Dot(aRow, opBT.Slice(j * k, k));
                        int index = i * n + j;
                        switch (epilogue)
                        {
                            case GemmEpilogue.None or GemmEpilogue.BiasGradA:
                                cs[index] = beta == T.Zero ? p : p + beta * cs[index];
                                break;
                            case GemmEpilogue.Bias:
                                cs[index] = (beta == T.Zero ? p : p + beta * cs[index]) + biasS[j];
                                break;
                            case GemmEpilogue.BiasGelu or GemmEpilogue.Gelu:
                                T z = epilogue == GemmEpilogue.BiasGelu ? p + biasS[j] : p;
                                if (aux is not null)
                                {
                                    auxS[index] = z;
                                }
                                cs[index] = Gelu(z);
                                break;
                            case GemmEpilogue.DGelu:
                                cs[index] = p * GeluGrad(auxS[index]);
                                break;
                        }
                    }
                }
            }
        });

        if (biasGrad is not null)
        {
            var grad = biasGrad.Span<T>();
            if (epilogue == GemmEpilogue.DGelu)
            {
                ReadOnlySpan<T> cs = c.Span<T>();
                grad.Clear();
                for (int i = 0; i < m; i++)
                {
                    TensorPrimitives.Add(grad, cs.Slice(i * n, n), grad);
                }
            }
            else
            {
                ReadOnlySpan<T> opA = aRows.AsSpan(aOffset, m * k);
                for (int i = 0; i < m; i++)
                {
                    grad[i] = TensorPrimitives.Sum(opA.Slice(i * k, k));
                }
            }
        }
    }

    /// <summary>The [cols, rows] transpose of a row-major [rows, cols] matrix.</summary>
    private static T[] Transposed<T>(ReadOnlySpan<T> source, int rows, int cols)
    {
        var result = GC.AllocateUninitializedArray<T>(rows * cols);
        for (int i = 0; i < rows; i++)
        {
            var row = source.Slice(i * cols, cols);
            for (int j = 0; j < cols; j++)
            {
                result[j * rows + i] = row[j];
            }
        }
        return result;
    }
}
