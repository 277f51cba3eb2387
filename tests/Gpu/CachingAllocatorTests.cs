using ModelParallel.Runtime;
using ModelParallel.Runtime.Cuda;

namespace ModelParallel.Tests.Gpu;

[Trait("Category", GpuRequirement.Category)]
[Collection(GpuCollection.Name)]
public class CachingAllocatorTests
{
    [Fact]
    public void StatisticsFollowAllocationsFreesAndTheCache()
    {
        GpuRequirement.Require(1);
        using var allocator = new CachingAllocator(0);
        Assert.Equal(new AllocatorStats(0, 0, 0, 0, 0), allocator.Stats);

        var first = new DeviceBuffer<float>(allocator, 250);
        Assert.Equal(new AllocatorStats(1024, 1024, 1024, 1, 0), allocator.Stats);
        var large = new DeviceBuffer<BFloat16>(allocator, 3 << 19);
        Assert.Equal(new AllocatorStats(1024 + (4 << 20), 1024 + (4 << 20), 1024 + (4 << 20), 2, 0), allocator.Stats);

        first.Dispose();
        Assert.Equal(new AllocatorStats(4 << 20, 1024 + (4 << 20), 1024 + (4 << 20), 2, 0), allocator.Stats);
        // 900 bytes fall in the 1024-byte class just freed: served by the cache.
        var reused = new DeviceBuffer<int>(allocator, 225);
        Assert.Equal(new AllocatorStats(1024 + (4 << 20), 1024 + (4 << 20), 1024 + (4 << 20), 3, 1), allocator.Stats);

        large.Dispose();
        allocator.ResetPeak();
        Assert.Equal(1024, allocator.Stats.PeakBytesInUse);
        Assert.Equal(1024 + (4 << 20), allocator.Stats.BytesReserved);
        allocator.EmptyCache();
        Assert.Equal(1024, allocator.Stats.BytesReserved);
        reused.Dispose();
        allocator.EmptyCache();
        Assert.Equal(new AllocatorStats(0, 1024, 0, 3, 1), allocator.Stats);
    }

    [Fact]
    public void TheBackendReportsItsAllocator()
    {
        GpuRequirement.Require(1);
        using var backend = new CudaBackend(0);
        var before = backend.AllocatorStats;
        using (var tensor = backend.Allocate(DType.BFloat16, 1000))
        {
            Assert.Equal(before.BytesInUse + 2048, backend.AllocatorStats.BytesInUse);
        }
        Assert.Equal(before.BytesInUse, backend.AllocatorStats.BytesInUse);
        using var again = backend.Allocate(DType.Float32, 500);
        Assert.Equal(before.CacheHits + 1, backend.AllocatorStats.CacheHits);
    }

    [Fact]
    public void MemoryIsReturnedWhenATensorIsCollected()
    {
        GpuRequirement.Require(1);
        using var allocator = new CachingAllocator(0);
        AllocateAndDrop(allocator);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(0, allocator.Stats.BytesInUse);
    }

    private static void AllocateAndDrop(CachingAllocator allocator) => _ = new DeviceBuffer<float>(allocator, 4096);
}
