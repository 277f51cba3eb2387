using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>Rotary embedding (rotate-half) against the definition; backward is the transpose of forward.</summary>
public sealed class CpuRopeTests
{
    private const int Seq = 5, Batch = 2, Heads = 3, HeadDim = 8, Offset = 3;
    private const float Theta = 10000f;

    /// <summary>Rotates pairs (i, i + headDim/2) by sign * position * theta^(-2i/headDim).</summary>
    private static double[] Rotate(double[] x, double sign)
    {
        var y = new double[x.Length];
        int half = HeadDim / 2;
        for (int s = 0; s < Seq; s++)
        {
            for (int v = 0; v < Batch * Heads; v++)
            {
                int start = (s * Batch * Heads + v) * HeadDim;
                for (int i = 0; i < half; i++)
                {
                    double angle = sign * (s + Offset) * Math.Pow(Theta, -2.0 * i / HeadDim);
                    double a = x[start + i], b = x[start + i + half];
                    y[start + i] = a * Math.Cos(angle) - b * Math.Sin(angle);
                    y[start + i + half] = b * Math.Cos(angle) + a * Math.Sin(angle);
                }
            }
        }
        return y;
    }

    [Theory]
    [MemberData(nameof(CpuTestKit.ComputeTypes), MemberType = typeof(CpuTestKit))]
    public void Rope_ForwardAndBackward_MatchReference(DType dtype)
    {
        var rng = TestRandom.Create();
        var x = CpuTestKit.Random(rng, dtype, Seq * Batch * Heads * HeadDim);
        var dy = CpuTestKit.Random(rng, dtype, x.Length);
        using var backend = new CpuBackend(dtype);
        var xt = TestTensors.Upload(backend, x);
        backend.Kernels.Rope(xt, Seq, Batch, Heads, HeadDim, Theta, Offset, backward: false);
        var y = TestTensors.Download(xt);
        double tol = CpuTestKit.Tolerance(dtype);
        Numerics.AssertClose(y, Rotate(x, 1), tol, "RoPE forward");

        var dyt = TestTensors.Upload(backend, dy);
        backend.Kernels.Rope(dyt, Seq, Batch, Heads, HeadDim, Theta, Offset, backward: true);
        var dx = TestTensors.Download(dyt);
        Numerics.AssertClose(dx, Rotate(dy, -1), tol, "RoPE backward");
        // Backward is the gradient of forward: <dy, R x> = <R^T dy, x>.
        double lhs = CpuReference.Dot(dy, Rotate(x, 1)), rhs = CpuReference.Dot(dx, x);
        Assert.True(Math.Abs(lhs - rhs) <= tol * Math.Abs(lhs) + 1e-6, $"<dy, Rx> = {lhs} but <R^T dy, x> = {rhs}");
    }

    [Fact]
    public void Rope_BadSizes_ThrowNamingThem()
    {
        using var backend = new CpuBackend(DType.Float32);
        var t = backend.Allocate(DType.Float32, 30);
        Assert.Equal("headDim", Assert.Throws<ArgumentException>(() => backend.Kernels.Rope(t, 2, 1, 3, 5, Theta, 0, false)).ParamName);
        Assert.Equal("theta", Assert.Throws<ArgumentOutOfRangeException>(() => backend.Kernels.Rope(t, 5, 1, 1, 6, 0f, 0, false)).ParamName);
        Assert.Equal("positionOffset", Assert.Throws<ArgumentOutOfRangeException>(
            () => backend.Kernels.Rope(t, 5, 1, 1, 6, Theta, -1, false)).ParamName);
        Assert.Equal("x", Assert.Throws<ArgumentException>(() => backend.Kernels.Rope(t, 4, 1, 1, 6, Theta, 0, false)).ParamName);
    }
}
