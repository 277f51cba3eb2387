using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>AdamW over several steps against the textbook update in float64.</summary>
public sealed class CpuOptimizerTests
{
    [Theory]
    [InlineData(DType.Float32, DType.Float64)]
    [InlineData(DType.Float64, DType.Float32)]
    [InlineData(DType.Float32, DType.Float32)]
    public void AdamW_ThreeSteps_MatchReference(DType dtype, DType modelType)
    {
        var rng = TestRandom.Create();
        const int count = 257, steps = 3;
        const float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weightDecay = 0.1f;
        var w = CpuTestKit.Random(rng, dtype, count);
        var grads = Enumerable.Range(0, steps).Select(_ => CpuTestKit.Random(rng, dtype, count)).ToArray();

        using var backend = new CpuBackend(dtype);
        var k = backend.Kernels;
        var master = TestTensors.Upload(backend, w);
        var m = backend.Allocate(dtype, count);
        var v = backend.Allocate(dtype, count);
        k.Fill(m, 0);
        k.Fill(v, 0);
        var model = TestTensors.Poisoned(backend, count, modelType);

        var expectedW = (double[])w.Clone();
        var expectedM = new double[count];
        var expectedV = new double[count];
        for (int step = 1; step <= steps; step++)
        {
            var g = grads[step - 1];
            k.AdamW(master, model, TestTensors.Upload(backend, g), m, v, lr, beta1, beta2, eps, weightDecay, step);
            for (int i = 0; i < count; i++)
            {
                expectedM[i] = beta1 * expectedM[i] + (1 - (double)beta1) * g[i];
                expectedV[i] = beta2 * expectedV[i] + (1 - (double)beta2) * g[i] * g[i];
                double mHat = expectedM[i] / (1 - Math.Pow(beta1, step));
                double vHat = expectedV[i] / (1 - Math.Pow(beta2, step));
                expectedW[i] -= lr * (mHat / (Math.Sqrt(vHat) + eps) + weightDecay * expectedW[i]);
            }
        }
        double tol = CpuTestKit.Tolerance(dtype);
        Numerics.AssertClose(TestTensors.Download(master), expectedW, tol, "master weights");
        Numerics.AssertClose(TestTensors.Download(m), expectedM, tol, "first moment");
        Numerics.AssertClose(TestTensors.Download(v), expectedV, tol, "second moment");
        Numerics.AssertClose(TestTensors.Download(model), CpuTestKit.Rounded(modelType, TestTensors.Download(master)),
            0, "model copy");
    }

    [Fact]
    public void AdamW_BadArguments_ThrowNamingThem()
    {
        using var backend = new CpuBackend(DType.Float32);
        var t = backend.Allocate(DType.Float32, 4);
        var shortGrad = backend.Allocate(DType.Float32, 3);
        var k = backend.Kernels;
        Assert.Equal("grad", Assert.Throws<ArgumentException>(() => k.AdamW(t, null, shortGrad, t, t, 1e-3f, 0.9f, 0.95f, 1e-8f, 0, 1)).ParamName);
        Assert.Equal("step", Assert.Throws<ArgumentOutOfRangeException>(() => k.AdamW(t, null, t, t, t, 1e-3f, 0.9f, 0.95f, 1e-8f, 0, 0)).ParamName);
        Assert.Equal("beta2", Assert.Throws<ArgumentOutOfRangeException>(() => k.AdamW(t, null, t, t, t, 1e-3f, 0.9f, 1f, 1e-8f, 0, 1)).ParamName);
        Assert.Equal("model", Assert.Throws<ArgumentException>(
            () => k.AdamW(t, backend.Allocate(DType.Int32, 4), t, t, t, 1e-3f, 0.9f, 0.95f, 1e-8f, 0, 1)).ParamName);
    }
}
