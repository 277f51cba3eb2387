using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>Add, Axpy, bias add and gradient, Fill, Convert and Copy2D.</summary>
public sealed class CpuElementwiseTests
{
    [Theory]
    [MemberData(nameof(CpuTestKit.ComputeTypes), MemberType = typeof(CpuTestKit))]
    public void AddAndBiasOps_MatchReference(DType dtype)
    {
        var rng = TestRandom.Create();
        const int rows = 5, cols = 7;
        var a = CpuTestKit.Random(rng, dtype, rows * cols);
        var b = CpuTestKit.Random(rng, dtype, rows * cols);
        var bias = CpuTestKit.Random(rng, dtype, cols);
        var dBias0 = CpuTestKit.Random(rng, dtype, cols);
        using var backend = new CpuBackend(dtype);
        var k = backend.Kernels;
        double tol = CpuTestKit.Tolerance(dtype);

        var sum = TestTensors.Poisoned(backend, rows * cols);
        k.Add(sum, TestTensors.Upload(backend, a), TestTensors.Upload(backend, b));
        Numerics.AssertClose(TestTensors.Download(sum), CpuReference.Add(a, b), tol, "Add");

        var y = TestTensors.Upload(backend, a);
        k.AddBias(y, TestTensors.Upload(backend, bias), rows, cols);
        Numerics.AssertClose(TestTensors.Download(y), [.. a.Select((v, i) => v + bias[i % cols])], tol, "AddBias");

        var dBias = TestTensors.Upload(backend, dBias0);
        k.BiasGrad(dBias, TestTensors.Upload(backend, b), rows, cols);
        var expected = dBias0.Select((v, c) => v + Enumerable.Range(0, rows).Sum(r => b[r * cols + c])).ToArray();
        Numerics.AssertClose(TestTensors.Download(dBias), expected, tol, "accumulated BiasGrad");
    }

    [Theory]
    [InlineData(DType.Float32, DType.Float32)]
    [InlineData(DType.Float32, DType.Float64)]
    [InlineData(DType.Float64, DType.Float32)]
    [InlineData(DType.Float64, DType.Float64)]
    public void Axpy_AnyFloatTypes_AccumulatesScaledX(DType yType, DType xType)
    {
        var rng = TestRandom.Create();
        const int count = 1023;
        var x = CpuTestKit.Random(rng, xType, count);
        var y = CpuTestKit.Random(rng, yType, count);
        float alpha = (float)(rng.NextDouble() + 0.5);
        using var backend = new CpuBackend(DType.Float64);
        var yt = TestTensors.Upload(backend, y, yType);
        backend.Kernels.Axpy(yt, alpha, TestTensors.Upload(backend, x, xType));
        Numerics.AssertClose(TestTensors.Download(yt), [.. y.Select((v, i) => v + alpha * x[i])],
            CpuTestKit.Tolerance(yType), $"Axpy into {yType} from {xType}");
    }

    [Fact]
    public void FillAndConvert_CoverEveryDType()
    {
        var rng = TestRandom.Create();
        using var backend = new CpuBackend(DType.Float32);
        var k = backend.Kernels;
        var ints = backend.Allocate(DType.Int32, 5);
        k.Fill(ints, -7);
        var intValues = new int[5];
        backend.Download(ints, intValues);
        Assert.All(intValues, v => Assert.Equal(-7, v));
        Assert.Equal("value", Assert.Throws<ArgumentOutOfRangeException>(() => k.Fill(ints, 0.5)).ParamName);

        var doubles = CpuTestKit.Random(rng, DType.Float64, 9);
        var source = TestTensors.Upload(backend, doubles, DType.Float64);
        var asFloat = TestTensors.Poisoned(backend, 9, DType.Float32);
        k.Convert(asFloat, source);
        Assert.Equal(CpuTestKit.Rounded(DType.Float32, doubles), TestTensors.Download(asFloat));
        var back = TestTensors.Poisoned(backend, 9, DType.Float64);
        k.Convert(back, asFloat);
        Assert.Equal(CpuTestKit.Rounded(DType.Float32, doubles), TestTensors.Download(back));

        var fromInts = TestTensors.Poisoned(backend, 5, DType.Float64);
        k.Convert(fromInts, ints);
        Assert.All(TestTensors.Download(fromInts), v => Assert.Equal(-7.0, v));
        Assert.Contains("cannot convert Float32 to Int32", Assert.Throws<ArgumentException>(
            () => k.Convert(ints, asFloat.Slice(0, 5))).Message);
        Assert.Contains("9", Assert.Throws<ArgumentException>(() => k.Convert(ints, asFloat)).Message);
    }

    [Theory]
    [MemberData(nameof(CpuTestKit.ComputeTypes), MemberType = typeof(CpuTestKit))]
    public void Copy2D_CopiesTheBlockOnly(DType dtype)
    {
        var rng = TestRandom.Create();
        const int rows = 3, cols = 4, srcStride = 6, dstStride = 5;
        var src = CpuTestKit.Random(rng, dtype, rows * srcStride);
        using var backend = new CpuBackend(dtype);
        var dst = TestTensors.Poisoned(backend, rows * dstStride);
        backend.Kernels.Copy2D(dst, dstStride, TestTensors.Upload(backend, src).Slice(1, rows * srcStride - 1), srcStride, rows, cols);
        var result = TestTensors.Download(dst);
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < dstStride; c++)
            {
                double value = result[r * dstStride + c];
                if (c < cols)
                {
                    Assert.Equal(src[1 + r * srcStride + c], value);
                }
                else
                {
                    Assert.True(double.IsNaN(value), $"element ({r}, {c}) outside the block was written");
                }
            }
        }
    }

    [Fact]
    public void Elementwise_BadArguments_ThrowNamingThem()
    {
        using var backend = new CpuBackend(DType.Float32);
        var k = backend.Kernels;
        var six = backend.Allocate(DType.Float32, 6);
        var seven = backend.Allocate(DType.Float32, 7);
        Assert.Equal("b", Assert.Throws<ArgumentException>(() => k.Add(six, six, seven)).ParamName);
        Assert.Contains("7", Assert.Throws<ArgumentException>(() => k.Axpy(six, 1f, seven)).Message);
        Assert.Equal("x", Assert.Throws<ArgumentException>(() => k.Axpy(six, 1f, backend.Allocate(DType.Int32, 6))).ParamName);
        Assert.Equal("bias", Assert.Throws<ArgumentException>(() => k.AddBias(six, six, 2, 3)).ParamName);
        Assert.Equal("srcStride", Assert.Throws<ArgumentOutOfRangeException>(() => k.Copy2D(six, 3, seven, 2, 2, 3)).ParamName);
        var tooSmall = Assert.Throws<ArgumentException>(() => k.Copy2D(six, 4, seven, 3, 2, 3));
        Assert.Equal("dst", tooSmall.ParamName);
        Assert.Contains("7", tooSmall.Message);
    }
}
