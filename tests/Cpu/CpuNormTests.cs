using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>RmsNorm and LayerNorm (with the fused residual add) against the definitions and finite differences.</summary>
public sealed class CpuNormTests
{
    private const float Eps = 1e-5f;

    public static TheoryData<DType, NormKind, bool, bool> Cases()
    {
        var data = new TheoryData<DType, NormKind, bool, bool>();
        foreach (var dtype in new[] { DType.Float32, DType.Float64 })
        {
            foreach (bool residual in new[] { false, true })
            {
                data.Add(dtype, NormKind.RmsNorm, residual, false);
                data.Add(dtype, NormKind.LayerNorm, residual, false);
                data.Add(dtype, NormKind.LayerNorm, residual, true);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Norm_ForwardAndBackward_MatchReference(DType dtype, NormKind kind, bool withResidual, bool withBias)
    {
        var rng = TestRandom.Create();
        foreach (var (rows, cols) in new[] { (3, 7), (5, 33) })
        {
            var x = CpuTestKit.Random(rng, dtype, rows * cols, 2);
            var residual = CpuTestKit.Random(rng, dtype, rows * cols);
            var weight = CpuTestKit.Random(rng, dtype, cols);
            var bias = withBias ? CpuTestKit.Random(rng, dtype, cols) : null;
            var dy = CpuTestKit.Random(rng, dtype, rows * cols);
            var dResidual = CpuTestKit.Random(rng, dtype, rows * cols);
            var dWeight0 = CpuTestKit.Random(rng, dtype, cols);
            var dBias0 = CpuTestKit.Random(rng, dtype, cols);
            var input = withResidual ? CpuReference.Add(x, residual) : x;
            var (expectedY, mean, rstd) = CpuReference.Norm(kind, input, weight, bias, rows, cols, Eps);
            string what = $"{kind} rows={rows} cols={cols} residual={withResidual} bias={withBias}";
            double tol = CpuTestKit.Tolerance(dtype);

            using var backend = new CpuBackend(dtype);
            var k = backend.Kernels;
            var yt = TestTensors.Poisoned(backend, rows * cols);
            var sumt = TestTensors.Poisoned(backend, rows * cols);
            var statst = TestTensors.Poisoned(backend, 2 * rows);
            var wt = TestTensors.Upload(backend, weight);
            var bt = bias is null ? null : TestTensors.Upload(backend, bias);
            k.NormForward(kind, yt, sumt, statst, TestTensors.Upload(backend, x),
                withResidual ? TestTensors.Upload(backend, residual) : null, wt, bt, rows, cols, Eps);
            Numerics.AssertClose(TestTensors.Download(yt), expectedY, tol, $"y of {what}");
            Numerics.AssertClose(TestTensors.Download(sumt), input, tol, $"sum of {what}");
            var stats = TestTensors.Download(statst);
            Numerics.AssertClose(stats[rows..], rstd, tol, $"rstd of {what}");
            if (kind == NormKind.LayerNorm)
            {
                Numerics.AssertClose(stats[..rows], mean, tol, $"mean of {what}");
            }

            var dxt = TestTensors.Poisoned(backend, rows * cols);
            var dwt = TestTensors.Upload(backend, dWeight0);
            var dbt = withBias ? TestTensors.Upload(backend, dBias0) : null;
            k.NormBackward(kind, dxt, dwt, dbt, TestTensors.Upload(backend, dy),
                withResidual ? TestTensors.Upload(backend, dResidual) : null, sumt, wt, statst, rows, cols);

            // Gradients of L = sum(dy .* norm(input; weight, bias)).
            double Loss(double[] inp, double[] w, double[]? b) => CpuReference.Dot(dy, CpuReference.Norm(kind, inp, w, b, rows, cols, Eps).Y);
            var dx = FiniteDifference.Gradient(v => Loss(v, weight, bias), [.. input]);
            var dw = FiniteDifference.Gradient(v => Loss(input, v, bias), [.. weight]);
            double gradTol = CpuTestKit.GradientTolerance(dtype);
            Numerics.AssertClose(TestTensors.Download(dxt), withResidual ? CpuReference.Add(dx, dResidual) : dx, gradTol,
                $"dx of {what}");
            Numerics.AssertClose(TestTensors.Download(dwt), CpuReference.Add(dWeight0, dw), gradTol,
                $"accumulated dWeight of {what}");
            if (bias is not null)
            {
                var db = FiniteDifference.Gradient(v => Loss(input, weight, v), [.. bias]);
                Numerics.AssertClose(TestTensors.Download(dbt!), CpuReference.Add(dBias0, db), gradTol,
                    $"accumulated dBias of {what}");
            }
        }
    }

    [Fact]
    public void Norm_WithoutResidualOrSum_NormalisesX()
    {
        var rng = TestRandom.Create();
        const int rows = 4, cols = 9;
        var x = CpuTestKit.Random(rng, DType.Float64, rows * cols);
        var weight = CpuTestKit.Random(rng, DType.Float64, cols);
        using var backend = new CpuBackend(DType.Float64);
        var yt = TestTensors.Poisoned(backend, rows * cols);
        backend.Kernels.NormForward(NormKind.RmsNorm, yt, null, TestTensors.Poisoned(backend, 2 * rows),
            TestTensors.Upload(backend, x), null, TestTensors.Upload(backend, weight), null, rows, cols, Eps);
        Numerics.AssertClose(TestTensors.Download(yt), CpuReference.Norm(NormKind.RmsNorm, x, weight, null, rows, cols, Eps).Y,
            1e-12, "RmsNorm without residual");
    }

    [Fact]
    public void Norm_BadArguments_ThrowNamingThem()
    {
        using var backend = new CpuBackend(DType.Float32);
        var k = backend.Kernels;
        var t = backend.Allocate(DType.Float32, 12);
        var w = backend.Allocate(DType.Float32, 4);
        var stats = backend.Allocate(DType.Float32, 6);
        Assert.Equal("bias", Assert.Throws<ArgumentException>(
            () => k.NormForward(NormKind.RmsNorm, t, null, stats, t, null, w, w, 3, 4, Eps)).ParamName);
        Assert.Equal("sum", Assert.Throws<ArgumentNullException>(
            () => k.NormForward(NormKind.RmsNorm, t, null, stats, t, t, w, null, 3, 4, Eps)).ParamName);
        var wrongStats = Assert.Throws<ArgumentException>(
            () => k.NormForward(NormKind.LayerNorm, t, null, w, t, null, w, null, 3, 4, Eps));
        Assert.Equal("stats", wrongStats.ParamName);
        Assert.Contains("2*rows", wrongStats.Message);
        Assert.Equal("eps", Assert.Throws<ArgumentOutOfRangeException>(
            () => k.NormForward(NormKind.LayerNorm, t, null, stats, t, null, w, null, 3, 4, -1f)).ParamName);
        Assert.Equal("cols", Assert.Throws<ArgumentOutOfRangeException>(
            () => k.NormBackward(NormKind.LayerNorm, t, w, null, t, null, t, w, stats, 3, 0)).ParamName);
    }
}
