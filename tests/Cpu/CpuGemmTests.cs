using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>GEMM in every transpose combination and epilogue against a naive float64 product.</summary>
public sealed class CpuGemmTests
{
    private static readonly (int M, int N, int K)[] Shapes = [(1, 1, 1), (5, 7, 3), (17, 13, 29), (3, 64, 40)];

    public static TheoryData<DType, bool, bool, GemmEpilogue> Cases()
    {
        var data = new TheoryData<DType, bool, bool, GemmEpilogue>();
        foreach (var dtype in new[] { DType.Float32, DType.Float64 })
        {
            foreach (bool transA in new[] { false, true })
            {
                foreach (bool transB in new[] { false, true })
                {
                    foreach (var epilogue in Enum.GetValues<GemmEpilogue>())
                    {
                        data.Add(dtype, transA, transB, epilogue);
                    }
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Gemm_MatchesNaiveProduct(DType dtype, bool transA, bool transB, GemmEpilogue epilogue)
    {
        var rng = TestRandom.Create();
        using var backend = new CpuBackend(dtype);
        foreach (var (m, n, k) in Shapes)
        {
            var a = CpuTestKit.Random(rng, dtype, m * k);
            var b = CpuTestKit.Random(rng, dtype, k * n);
            var c0 = CpuTestKit.Random(rng, dtype, m * n);
            var bias = CpuTestKit.Random(rng, dtype, n);
            var auxIn = CpuTestKit.Random(rng, dtype, m * n, 2);
            float alpha = (float)(0.5 + rng.NextDouble());
            bool betaAllowed = epilogue is GemmEpilogue.None or GemmEpilogue.Bias or GemmEpilogue.BiasGradA;
            float beta = betaAllowed ? (float)(rng.NextDouble() - 0.5) : 0f;

            var product = CpuReference.MatMul(a, b, m, n, k, transA, transB);
            var expected = new double[m * n];
            var expectedAux = new double[m * n];
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    int x = i * n + j;
                    double p = alpha * product[x];
                    double z = epilogue == GemmEpilogue.BiasGelu ? p + bias[j] : p;
                    expectedAux[x] = z;
                    expected[x] = epilogue switch
                    {
                        GemmEpilogue.None or GemmEpilogue.BiasGradA => p + beta * c0[x],
                        GemmEpilogue.Bias => p + beta * c0[x] + bias[j],
                        GemmEpilogue.BiasGelu or GemmEpilogue.Gelu => CpuReference.Gelu(z),
                        _ => p * CpuReference.GeluGrad(auxIn[x]),
                    };
                }
            }

            var at = TestTensors.Upload(backend, a);
            var bt = TestTensors.Upload(backend, b);
            // With beta = 0 the kernel must not read C: poisoning it checks that.
            var ct = beta != 0f ? TestTensors.Upload(backend, c0) : TestTensors.Poisoned(backend, m * n);
            var biasT = epilogue is GemmEpilogue.Bias or GemmEpilogue.BiasGelu ? TestTensors.Upload(backend, bias) : null;
            var auxT = epilogue switch
            {
                GemmEpilogue.DGelu => TestTensors.Upload(backend, auxIn),
                GemmEpilogue.BiasGelu or GemmEpilogue.Gelu => TestTensors.Poisoned(backend, m * n),
                _ => null,
            };
            var biasGradT = epilogue switch
            {
                GemmEpilogue.DGelu => TestTensors.Poisoned(backend, n),
                GemmEpilogue.BiasGradA => TestTensors.Poisoned(backend, m),
                _ => null,
            };
            backend.Kernels.Gemm(ct, at, bt, m, n, k, transA, transB, alpha, beta, epilogue, biasT, auxT, biasGradT);

            string what = $"{epilogue} transA={transA} transB={transB} m={m} n={n} k={k}";
            double tol = CpuTestKit.Tolerance(dtype);
            Numerics.AssertClose(TestTensors.Download(ct), expected, tol, $"C of {what}");
            if (epilogue is GemmEpilogue.BiasGelu or GemmEpilogue.Gelu)
            {
                Numerics.AssertClose(TestTensors.Download(auxT!), expectedAux, tol, $"aux of {what}");
            }
            if (epilogue == GemmEpilogue.DGelu)
            {
                var columnSums = Enumerable.Range(0, n).Select(j => Enumerable.Range(0, m).Sum(i => expected[i * n + j])).ToArray();
                Numerics.AssertClose(TestTensors.Download(biasGradT!), columnSums, tol, $"biasGrad of {what}");
            }
            if (epilogue == GemmEpilogue.BiasGradA)
            {
                var rowSums = Enumerable.Range(0, m)
                    .Select(i => Enumerable.Range(0, k).Sum(p => transA ? a[p * m + i] : a[i * k + p])).ToArray();
                Numerics.AssertClose(TestTensors.Download(biasGradT!), rowSums, tol, $"biasGrad of {what}");
            }
        }
    }

    [Fact]
    public void Gemm_GeluEpilogueWithoutAux_WritesOnlyC()
    {
        var rng = TestRandom.Create();
        using var backend = new CpuBackend(DType.Float64);
        const int m = 4, n = 6, k = 5;
        var a = CpuTestKit.Random(rng, DType.Float64, m * k);
        var b = CpuTestKit.Random(rng, DType.Float64, k * n);
        var ct = TestTensors.Poisoned(backend, m * n);
        backend.Kernels.Gemm(ct, TestTensors.Upload(backend, a), TestTensors.Upload(backend, b), m, n, k, false, false,
            epilogue: GemmEpilogue.Gelu);
        var expected = CpuReference.MatMul(a, b, m, n, k, false, false).Select(CpuReference.Gelu).ToArray();
        Numerics.AssertClose(TestTensors.Download(ct), expected, 1e-12, "GeLU GEMM without aux");
    }

    [Fact]
    public void Gemm_BadArguments_ThrowNamingTheValue()
    {
        using var backend = new CpuBackend(DType.Float32);
        var kernels = backend.Kernels;
        var a = backend.Allocate(DType.Float32, 6);
        var b = backend.Allocate(DType.Float32, 6);
        var c = backend.Allocate(DType.Float32, 4);
        var wrongA = Assert.Throws<ArgumentException>(() => kernels.Gemm(c, a, b, 2, 2, 4, false, false));
        Assert.Equal("a", wrongA.ParamName);
        Assert.Contains("6", wrongA.Message);
        Assert.Contains("8", wrongA.Message);
        Assert.Equal("m", Assert.Throws<ArgumentOutOfRangeException>(() => kernels.Gemm(c, a, b, 0, 2, 3, false, false)).ParamName);
        Assert.Equal("beta", Assert.Throws<ArgumentException>(
            () => kernels.Gemm(c, a, b, 2, 2, 3, false, false, beta: 1, epilogue: GemmEpilogue.Gelu)).ParamName);
        Assert.Equal("aux", Assert.Throws<ArgumentNullException>(
            () => kernels.Gemm(c, a, b, 2, 2, 3, false, false, epilogue: GemmEpilogue.DGelu)).ParamName);
        Assert.Equal("bias", Assert.Throws<ArgumentNullException>(
            () => kernels.Gemm(c, a, b, 2, 2, 3, false, false, epilogue: GemmEpilogue.Bias)).ParamName);
        Assert.Equal("biasGrad", Assert.Throws<ArgumentNullException>(
            () => kernels.Gemm(c, a, b, 2, 2, 3, false, false, epilogue: GemmEpilogue.BiasGradA)).ParamName);
        Assert.Equal("bias", Assert.Throws<ArgumentException>(
            () => kernels.Gemm(c, a, b, 2, 2, 3, false, false, bias: backend.Allocate(DType.Float32, 2))).ParamName);
        var wrongBias = Assert.Throws<ArgumentException>(() => kernels.Gemm(c, a, b, 2, 2, 3, false, false,
            epilogue: GemmEpilogue.Bias, bias: backend.Allocate(DType.Float32, 3)));
        Assert.Contains("bias has 3 elements", wrongBias.Message);
        var wrongType = Assert.Throws<ArgumentException>(
            () => kernels.Gemm(c, backend.Allocate(DType.Float64, 6), b, 2, 2, 3, false, false));
        Assert.Contains("Float64", wrongType.Message);
        Assert.Contains("overlap", Assert.Throws<ArgumentException>(
            () => kernels.Gemm(a.Slice(0, 4), a, b, 2, 2, 3, false, false)).Message);
    }
}
