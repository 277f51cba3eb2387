using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>GeLU (tanh form) and SwiGLU against their definitions and finite differences.</summary>
public sealed class CpuActivationTests
{
    [Fact]
    public void GeluGradReference_MatchesFiniteDifferences()
    {
        var rng = TestRandom.Create();
        var xs = Numerics.RandomArray(rng, 50, 4);
        var fd = xs.Select(x => FiniteDifference.Gradient(v => CpuReference.Gelu(v[0]), [x])[0]).ToArray();
        Numerics.AssertClose([.. xs.Select(CpuReference.GeluGrad)], fd, 1e-8, "reference GeLU derivative");
    }

    [Theory]
    [MemberData(nameof(CpuTestKit.ComputeTypes), MemberType = typeof(CpuTestKit))]
    public void Gelu_ForwardAndBackward_MatchReference(DType dtype)
    {
        var rng = TestRandom.Create();
        const int count = 1023;
        var x = CpuTestKit.Random(rng, dtype, count, 4);
        var dy = CpuTestKit.Random(rng, dtype, count);
        using var backend = new CpuBackend(dtype);
        var xt = TestTensors.Upload(backend, x);
        var yt = TestTensors.Poisoned(backend, count);
        var dxt = TestTensors.Poisoned(backend, count);
        backend.Kernels.GeluForward(yt, xt);
        backend.Kernels.GeluBackward(dxt, TestTensors.Upload(backend, dy), xt);
        double tol = CpuTestKit.Tolerance(dtype);
        Numerics.AssertClose(TestTensors.Download(yt), [.. x.Select(CpuReference.Gelu)], tol, "GeLU");
        Numerics.AssertClose(TestTensors.Download(dxt), [.. x.Select((v, i) => dy[i] * CpuReference.GeluGrad(v))], tol,
            "GeLU backward");
    }

    [Theory]
    [MemberData(nameof(CpuTestKit.ComputeTypes), MemberType = typeof(CpuTestKit))]
    public void Swiglu_ForwardAndBackward_MatchReference(DType dtype)
    {
        var rng = TestRandom.Create();
        const int rows = 3, cols = 11;
        var gateUp = CpuTestKit.Random(rng, dtype, rows * 2 * cols, 3);
        var dy = CpuTestKit.Random(rng, dtype, rows * cols);
        double[] Swiglu(double[] gu) => [.. Enumerable.Range(0, rows * cols).Select(i =>
        {
            int r = i / cols, c = i % cols;
            return CpuReference.Silu(gu[r * 2 * cols + c]) * gu[r * 2 * cols + cols + c];
        })];

        using var backend = new CpuBackend(dtype);
        var gt = TestTensors.Upload(backend, gateUp);
        var yt = TestTensors.Poisoned(backend, rows * cols);
        var dgt = TestTensors.Poisoned(backend, rows * 2 * cols);
        backend.Kernels.SwigluForward(yt, gt, rows, cols);
        backend.Kernels.SwigluBackward(dgt, TestTensors.Upload(backend, dy), gt, rows, cols);
        Numerics.AssertClose(TestTensors.Download(yt), Swiglu(gateUp), CpuTestKit.Tolerance(dtype), "SwiGLU");
        var expected = FiniteDifference.Gradient(gu => CpuReference.Dot(dy, Swiglu(gu)), [.. gateUp]);
        Numerics.AssertClose(TestTensors.Download(dgt), expected, CpuTestKit.GradientTolerance(dtype), "SwiGLU backward");
    }

    [Fact]
    public void Activations_BadSizes_ThrowNamingThem()
    {
        using var backend = new CpuBackend(DType.Float64);
        var seven = backend.Allocate(DType.Float64, 7);
        var eight = backend.Allocate(DType.Float64, 8);
        var gelu = Assert.Throws<ArgumentException>(() => backend.Kernels.GeluForward(eight, seven));
        Assert.Equal("y", gelu.ParamName);
        Assert.Contains("8", gelu.Message);
        Assert.Equal("gateUp", Assert.Throws<ArgumentException>(() => backend.Kernels.SwigluForward(seven, seven, 1, 7)).ParamName);
        Assert.Equal("rows", Assert.Throws<ArgumentOutOfRangeException>(() => backend.Kernels.SwigluForward(seven, seven, -1, 7)).ParamName);
    }
}
