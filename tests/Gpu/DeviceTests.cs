using ModelParallel.Runtime;
using ModelParallel.Runtime.Cuda;

namespace ModelParallel.Tests.Gpu;

[Trait("Category", GpuRequirement.Category)]
[Collection(GpuCollection.Name)]
public class DeviceTests
{
    [Fact]
    public void PropertiesDescribeTheDevice()
    {
        GpuRequirement.Require(1);
        var properties = Device.GetProperties(0);
        TestContext.Current.TestOutputHelper?.WriteLine($"{properties}; {CudaLibraryVersions.Query()}");
        Assert.False(string.IsNullOrWhiteSpace(properties.Name));
        Assert.True(properties.TotalMemoryBytes > 1L << 30);
        Assert.True(properties.MultiProcessorCount > 0);
        Assert.True(properties.ComputeCapabilityMajor >= 7);
        Assert.True(properties.L2CacheBytes > 0);
        var (free, total) = Device.MemoryInfo(0);
        Assert.InRange(free, 1, total);
        Assert.Throws<ArgumentOutOfRangeException>(() => Device.GetProperties(Device.Count));
    }

    [Fact]
    public void PeerAccessMatrixIsSquareWithAFalseDiagonal()
    {
        GpuRequirement.Require(1);
        var matrix = Device.PeerAccessMatrix();
        int count = Device.Count;
        Assert.Equal(count, matrix.GetLength(0));
        Assert.Equal(count, matrix.GetLength(1));
        for (int i = 0; i < count; i++)
        {
            Assert.False(matrix[i, i]);
            for (int j = 0; j < count; j++)
            {
                if (matrix[i, j])
                {
                    Device.EnablePeerAccess(i, j);
                    Device.EnablePeerAccess(i, j);
                }
            }
        }
    }

    [Fact]
    public void StreamsEventsAndPriorities()
    {
        GpuRequirement.Require(1);
        var (least, greatest) = CudaStream.PriorityRange(0);
        Assert.True(greatest <= least);
        using var urgent = new CudaStream(0, greatest);
        Assert.Equal(greatest, urgent.Priority);
        Assert.Throws<ArgumentOutOfRangeException>(() => new CudaStream(0, least + 1));

        using var backend = new CudaBackend(0);
        using var start = new CudaEvent(0);
        using var end = new CudaEvent(0);
        using var a = backend.Allocate(DType.BFloat16, 1024 * 1024);
        using var c = backend.Allocate(DType.BFloat16, 1024 * 1024);
        backend.Kernels.Fill(a, 0.5);
        start.Record(backend.Stream);
        for (int i = 0; i < 10; i++)
        {
            backend.Kernels.Gemm(c, a, a, 1024, 1024, 1024, false, true);
        }
        end.Record(backend.Stream);
        urgent.Wait(end);
        urgent.Synchronize();
        Assert.True(end.IsComplete);
        Assert.True(backend.Stream.IsIdle);
        float milliseconds = CudaEvent.ElapsedMilliseconds(start, end);
        Assert.True(milliseconds > 0, $"ten 1024^3 GEMMs took {milliseconds} ms");
        using var untimed = new CudaEvent(0, timing: false);
        Assert.Throws<ArgumentException>(() => CudaEvent.ElapsedMilliseconds(start, untimed));
    }
}
