using ModelParallel.Runtime;
using ModelParallel.Runtime.Cuda;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Gpu;

[Trait("Category", GpuRequirement.Category)]
[Collection(GpuCollection.Name)]
public class DeviceBufferTests
{
    [Fact]
    public void SpansAndPinnedBuffersRoundTrip()
    {
        GpuRequirement.Require(1);
        var rng = TestRandom.Create();
        using var allocator = new CachingAllocator(0);
        using var stream = new CudaStream(0);
        float[] values = [.. Numerics.RandomArray(rng, 1001).Select(v => (float)v)];
        using var buffer = new DeviceBuffer<float>(allocator, values.Length);
        buffer.CopyFrom(values, stream);
        var back = new float[values.Length];
        buffer.CopyTo(back, stream);
        Assert.Equal(values, back);

        using var pinned = new PinnedHostBuffer<BFloat16>(333);
        for (int i = 0; i < 333; i++)
        {
            pinned.Span[i] = (BFloat16)(float)(rng.NextDouble() + 0.5);
        }
        using var halves = new DeviceBuffer<BFloat16>(allocator, 333);
        using var copy = new DeviceBuffer<BFloat16>(allocator, 333);
        using var result = new PinnedHostBuffer<BFloat16>(333);
        halves.CopyFromAsync(pinned, stream);
        copy.CopyFromAsync(halves, stream);
        copy.CopyToAsync(result, stream);
        stream.Synchronize();
        Assert.Equal(pinned.Span.ToArray(), result.Span.ToArray());
    }

    [Fact]
    public void FillSetsEveryElement()
    {
        GpuRequirement.Require(1);
        using var allocator = new CachingAllocator(0);
        using var stream = new CudaStream(0);
        using var ints = new DeviceBuffer<int>(allocator, 77);
        ints.Fill(-3, stream);
        var back = new int[77];
        ints.CopyTo(back, stream);
        Assert.All(back, v => Assert.Equal(-3, v));
        using var halves = new DeviceBuffer<Half>(allocator, 10);
        halves.Fill((Half)0.5, stream);
        var halfBack = new Half[10];
        halves.CopyTo(halfBack, stream);
        Assert.All(halfBack, v => Assert.Equal((Half)0.5, v));
        halves.Fill(default, stream);
        halves.CopyTo(halfBack, stream);
        Assert.All(halfBack, v => Assert.Equal((Half)0, v));
    }

    [Fact]
    public void MismatchedSizesAndDTypesThrow()
    {
        GpuRequirement.Require(1);
        using var backend = new CudaBackend(0);
        using var buffer = new DeviceBuffer<float>(backend.Allocator, 10);
        var e = Assert.Throws<ArgumentException>(() => buffer.CopyFrom(new float[9], backend.Stream));
        Assert.Contains("9 elements", e.Message);
        Assert.Contains("10", e.Message);
        using var shorter = new DeviceBuffer<float>(backend.Allocator, 11);
        Assert.Throws<ArgumentException>(() => buffer.CopyFromAsync(shorter, backend.Stream));
        using var bf16 = backend.Allocate(DType.BFloat16, 10);
        e = Assert.Throws<ArgumentException>(() => buffer.CopyFromAsync(bf16, backend.Stream));
        Assert.Contains("BFloat16", e.Message);
        Assert.Contains("Float32", e.Message);
        using var f32 = backend.Allocate(DType.Float32, 10);
        buffer.CopyToAsync(f32, backend.Stream);
        Assert.Throws<NotSupportedException>(() => new DeviceBuffer<double>(backend.Allocator, 4));
        e = Assert.Throws<ArgumentException>(() => backend.Upload(f32, new double[11]));
        Assert.Contains("11", e.Message);
        Assert.Throws<ArgumentException>(() => backend.Upload(backend.Allocate(DType.Int32, 2), new double[] { 1.5, 2 }));
        Assert.Throws<ArgumentException>(() => backend.Download(f32, new int[10]));
    }

    [Fact]
    public void BuffersAndStreamsOfDifferentDevicesDoNotMix()
    {
        GpuRequirement.Require(2);
        using var allocator = new CachingAllocator(0);
        using var otherStream = new CudaStream(1);
        using var buffer = new DeviceBuffer<float>(allocator, 4);
        var e = Assert.Throws<ArgumentException>(() => buffer.CopyFrom(new float[4], otherStream));
        Assert.Contains("cuda:1", e.Message);
    }

    [Fact]
    public void UploadAndDownloadConvertThroughTheStagingBuffer()
    {
        GpuRequirement.Require(1);
        var rng = TestRandom.Create();
        using var backend = new CudaBackend(0);
        // More than one 16 MiB staging chunk of Float32.
        double[] values = Numerics.RandomArray(rng, (5 << 20) + 3);
        using var f32 = backend.Allocate(DType.Float32, values.Length);
        backend.Upload(f32, values);
        var back = new double[values.Length];
        backend.Download(f32, back);
        Numerics.AssertClose(back, [.. values.Select(v => (double)(float)v)], 0, "Float32 upload and download");

        using var bf16 = backend.Allocate(DType.BFloat16, 1000);
        float[] floats = [.. values.Take(1000).Select(v => (float)v)];
        backend.Upload(bf16, floats);
        var rounded = new float[1000];
        backend.Download(bf16, rounded);
        Assert.Equal(floats.Select(f => (float)(BFloat16)f), rounded);

        using var ints = backend.Allocate(DType.Int32, 5);
        backend.Upload(ints, new[] { 1, -2, 3, -4, int.MaxValue });
        var intBack = new int[5];
        backend.Download(ints, intBack);
        Assert.Equal(new[] { 1, -2, 3, -4, int.MaxValue }, intBack);
    }
}
