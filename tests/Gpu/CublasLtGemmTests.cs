using ModelParallel.Runtime;

namespace ModelParallel.Tests.Gpu;

/// <summary>cuBLASLt GEMMs (row-major API on column-major cuBLASLt) against the float64 CPU GEMM, for every epilogue,
/// every transpose combination, BFloat16 and Float32, at shapes including sizes that are not multiples of 8.</summary>
[Trait("Category", GpuRequirement.Category)]
[Collection(GpuCollection.Name)]
public class CublasLtGemmTests
{
    private const double GeluEpilogueFloat32Tolerance = 5e-5;

    private static readonly (int M, int N, int K)[] Shapes = [(1, 1, 1), (7, 5, 3), (33, 65, 17), (64, 48, 32), (128, 256, 64)];

    public static TheoryData<GemmEpilogue, bool, bool, DType, DType> Cases()
    {
        var data = new TheoryData<GemmEpilogue, bool, bool, DType, DType>();
        (GemmEpilogue Epilogue, bool Aux, bool BiasGrad)[] variants =
        [
            (GemmEpilogue.None, false, false),
            (GemmEpilogue.Bias, false, false),
            (GemmEpilogue.BiasGelu, true, false),
            (GemmEpilogue.BiasGelu, false, false),
            (GemmEpilogue.Gelu, true, false),
            (GemmEpilogue.Gelu, false, false),
            (GemmEpilogue.DGelu, true, true),
            (GemmEpilogue.DGelu, true, false),
            (GemmEpilogue.BiasGradA, false, true),
        ];
        (DType Input, DType Output)[] types = [(DType.BFloat16, DType.BFloat16), (DType.BFloat16, DType.Float32), (DType.Float32, DType.Float32)];
        foreach (var (epilogue, aux, biasGrad) in variants)
        {
            foreach (var (input, output) in types)
            {
                data.Add(epilogue, aux, biasGrad, input, output);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTheFloat64Reference(GemmEpilogue epilogue, bool withAux, bool withBiasGrad, DType input, DType output)
    {
        using var t = new GpuTwin();
        foreach (var (m, n, k) in Shapes)
        {
            foreach (bool transA in new[] { false, true })
            {
                foreach (bool transB in new[] { false, true })
                {
                    Check(t, epilogue, withAux, withBiasGrad, input, output, m, n, k, transA, transB);
                }
            }
        }
        Assert.True(t.Gpu.Gemm.PlanCount > 0);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{t.Gpu.Gemm.PlanCount} plans, {t.Gpu.Gemm.UnfusedPlanCount} of them with the epilogue unfused");
    }

    private static void Check(GpuTwin t, GemmEpilogue epilogue, bool withAux, bool withBiasGrad, DType input, DType output,
        int m, int n, int k, bool transA, bool transB)
    {
        string what = $"{epilogue} aux={withAux} biasGrad={withBiasGrad} {input}->{output} m={m} n={n} k={k} " +
                      $"transA={transA} transB={transB}";
        bool accumulates = epilogue is GemmEpilogue.None or GemmEpilogue.Bias or GemmEpilogue.BiasGradA;
        float beta = accumulates ? 0.5f : 0f;
        const float alpha = 0.75f;
        var a = t.Random((long)m * k, input);
        var b = t.Random((long)k * n, input);
        var c = accumulates ? t.Random((long)m * n, output) : t.Poisoned((long)m * n, output);
        var bias = epilogue is GemmEpilogue.Bias or GemmEpilogue.BiasGelu ? t.Random(n, output) : null;
        var aux = !withAux ? null
            : epilogue == GemmEpilogue.DGelu ? t.Random((long)m * n, output, 2) : t.Poisoned((long)m * n, output);
        var biasGrad = withBiasGrad ? t.Poisoned(epilogue == GemmEpilogue.BiasGradA ? m : n, DType.Float32) : null;
        double[]? terms = bias is null ? null : TermMagnitudes(t, a, b, c, bias, m, n, k, transA, transB, alpha, beta);
        t.Run((kernels, s) => kernels.Gemm(c.On(s), a.On(s), b.On(s), m, n, k, transA, transB, alpha, beta, epilogue,
            bias?.On(s), aux?.On(s), biasGrad?.On(s)));
        double tolerance = GpuTwin.Tolerance(output);
        // cuBLASLt's fused GELU evaluates tanh with a fast approximation: single Float32 elements were seen up to
        // 2.9e-5 away from the float64 tanh form (H200, CUDA 13.0), so C of a GELU epilogue gets 5e-5 in Float32.
        double cTolerance = output == DType.Float32 && epilogue is GemmEpilogue.BiasGelu or GemmEpilogue.Gelu or GemmEpilogue.DGelu
            ? GeluEpilogueFloat32Tolerance : tolerance;
        AssertClose(t, c, terms, $"C of {what}", cTolerance);
        if (aux is not null && epilogue != GemmEpilogue.DGelu)
        {
            AssertClose(t, aux, terms, $"pre-activation of {what}", tolerance);
        }
        if (biasGrad is not null)
        {
            t.AssertClose(biasGrad, $"bias gradient of {what}", tolerance);
        }
    }

    /// <summary>
    /// |alpha op(A) op(B)| + |bias| + |beta C| per element (float64): the size of the terms a bias epilogue adds. Where
    /// they nearly cancel, the rounding of each term is large against their sum: a single bf16 pre-activation
    /// (m = n = k = 1) was seen 1.07e-2 from float64 relative to the sum, so bias epilogues are measured against this.
    /// </summary>
    private static double[] TermMagnitudes(GpuTwin t, TwinTensor a, TwinTensor b, TwinTensor c, TwinTensor bias,
        int m, int n, int k, bool transA, bool transB, float alpha, float beta)
    {
        using var product = t.Cpu.Allocate(DType.Float64, (long)m * n);
        t.Cpu.Kernels.Gemm(product, a.Cpu, b.Cpu, m, n, k, transA, transB, alpha, 0f);
        var terms = new double[m * n];
        t.Cpu.Download(product, terms);
        double[] biasValues = t.DownloadCpu(bias);
        double[] cValues = beta == 0f ? new double[m * n] : t.DownloadCpu(c);
        for (int i = 0; i < terms.Length; i++)
        {
            terms[i] = Math.Abs(terms[i]) + Math.Abs(biasValues[i % n]) + Math.Abs(beta * cValues[i]);
        }
        return terms;
    }

    /// <summary>||gpu - cpu|| relative to ||cpu||, or to ||<paramref name="terms"/>|| when the output is a sum of terms.</summary>
    private static void AssertClose(GpuTwin t, TwinTensor tensor, double[]? terms, string what, double tolerance)
    {
        if (terms is null)
        {
            t.AssertClose(tensor, what, tolerance);
            return;
        }
        Support.Numerics.AssertCloseTo(t.DownloadGpu(tensor), t.DownloadCpu(tensor), terms, tolerance, what);
    }

    [Fact]
    public void InPlaceDGeluReadsThePreActivationItOverwrites()
    {
        using var t = new GpuTwin();
        const int m = 24, n = 40, k = 16;
        var a = t.Random((long)m * k, DType.BFloat16);
        var b = t.Random((long)k * n, DType.BFloat16);
        var c = t.Random((long)m * n, DType.BFloat16, 2);
        var biasGrad = t.Poisoned(n, DType.Float32);
        t.Run((kernels, s) => kernels.Gemm(c.On(s), a.On(s), b.On(s), m, n, k, false, true, 1f, 0f, GemmEpilogue.DGelu,
            aux: c.On(s), biasGrad: biasGrad.On(s)));
        t.AssertClose(c, "in-place DGelu");
        t.AssertClose(biasGrad, "in-place DGelu bias gradient", GpuTwin.Tolerance(DType.BFloat16));
    }

    [Fact]
    public void ViewsAtOddOffsetsAreAligned()
    {
        using var t = new GpuTwin();
        const int m = 9, n = 11, k = 13;
        var a = t.Random((long)m * k + 1, DType.BFloat16);
        var b = t.Random((long)k * n + 3, DType.BFloat16);
        var c = t.Poisoned((long)m * n + 5, DType.BFloat16);
        t.Run((kernels, s) => kernels.Gemm(c.On(s).Slice(5, m * n), a.On(s).Slice(1, m * k), b.On(s).Slice(3, k * n),
            m, n, k, true, false));
        double[] gpu = t.DownloadGpu(c)[5..], cpu = t.DownloadCpu(c)[5..];
        Support.Numerics.AssertClose(gpu, cpu, GpuTwin.Tolerance(DType.BFloat16), "GEMM on 2-byte aligned views");
    }

    [Fact]
    public void Tf32IsOptIn()
    {
        using var t = new GpuTwin();
        const int m = 96, n = 80, k = 512;
        var a = t.Random((long)m * k, DType.Float32);
        var b = t.Random((long)k * n, DType.Float32);
        var exact = t.Poisoned((long)m * n, DType.Float32);
        t.Run((kernels, s) => kernels.Gemm(exact.On(s), a.On(s), b.On(s), m, n, k, false, false));
        t.AssertClose(exact, "Float32 GEMM without TF32", 1e-5);
        t.Gpu.Gemm.AllowTf32 = true;
        var fast = t.Poisoned((long)m * n, DType.Float32);
        t.Run((kernels, s) => kernels.Gemm(fast.On(s), a.On(s), b.On(s), m, n, k, false, false));
        t.AssertClose(fast, "Float32 GEMM with TF32", 1e-3);
    }

    [Fact]
    public void PlansAreCachedPerProblem()
    {
        using var t = new GpuTwin();
        var a = t.Random(64 * 32, DType.BFloat16);
        var b = t.Random(32 * 16, DType.BFloat16);
        var c = t.Poisoned(64 * 16, DType.BFloat16);
        for (int i = 0; i < 3; i++)
        {
            t.Gpu.Kernels.Gemm(c.Gpu, a.Gpu, b.Gpu, 64, 16, 32, false, false);
        }
        Assert.Equal(1, t.Gpu.Gemm.PlanCount);
        t.Gpu.Kernels.Gemm(c.Gpu, a.Gpu, b.Gpu, 64, 16, 32, true, false);
        Assert.Equal(2, t.Gpu.Gemm.PlanCount);
        t.Gpu.Synchronize();
        var plans = t.Gpu.Gemm.DescribePlans();
        Assert.Equal(2, plans.Count);
        Assert.All(plans, p => Assert.Matches(@"^m=64 n=16 k=32 transA=(True|False) .*: algo \d+ tile \d+ stages \d+, of \d+ candidates", p));
    }

    [Fact]
    public void LargeProblemsKeepTheFastestCandidateAndStayExact()
    {
        using var t = new GpuTwin();
        const int m = 256, n = 384, k = 512;
        var a = t.Random((long)m * k, DType.BFloat16);
        var b = t.Random((long)n * k, DType.BFloat16);
        var bias = t.Random(n, DType.BFloat16);
        var aux = t.Poisoned((long)m * n, DType.BFloat16);
        var c = t.Poisoned((long)m * n, DType.BFloat16);
        t.Run((kernels, s) => kernels.Gemm(c.On(s), a.On(s), b.On(s), m, n, k, false, true, 1f, 0f, GemmEpilogue.BiasGelu,
            bias.On(s), aux.On(s)));
        t.AssertClose(c, "tuned GEMM + bias + GeLU");
        t.AssertClose(aux, "pre-activation of the tuned GEMM + bias + GeLU");
        string plan = Assert.Single(t.Gpu.Gemm.DescribePlans());
        Assert.Matches(@"(, timed \(median ms of each accepted candidate, the heuristic's order:( \d+\.\d{4})+\)|, the heuristic's first)$", plan);
        TestContext.Current.TestOutputHelper?.WriteLine(plan);
    }
}
