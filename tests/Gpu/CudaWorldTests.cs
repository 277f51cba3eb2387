using System.Diagnostics;
using ModelParallel.Runtime;
using ModelParallel.Runtime.Cuda;

namespace ModelParallel.Tests.Gpu;

[Trait("Category", GpuRequirement.Category)]
[Collection(GpuCollection.Name)]
public class CudaWorldTests
{
    [Fact]
    public void RanksGetOneGpuEach()
    {
        GpuRequirement.Require(2);
        var seen = CudaWorld.Run(2, ctx => (ctx.Rank, ctx.WorldSize, ((CudaBackend)ctx.Backend).Device));
        Assert.Equal(new[] { (0, 2, 0), (1, 2, 1) }, seen);
    }

    [Fact]
    public void AFailedRankStopsTheOthersInsteadOfHangingThem()
    {
        GpuRequirement.Require(2);
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<InvalidOperationException>(() => CudaWorld.Run(2, ctx =>
        {
            if (ctx.Rank == 1)
            {
                throw new InvalidOperationException("rank 1 fails before the all-reduce");
            }
            using var value = ctx.Backend.Allocate(DType.Float32, 1024);
            ctx.Backend.Kernels.Fill(value, 1);
            // Rank 1 never joins: this all-reduce can only end by being abandoned and aborted.
            ctx.World.AllReduce(value, value);
            ctx.Backend.Synchronize();
        }));
        Assert.Equal("rank 1 fails before the all-reduce", e.Message);
        Assert.Equal(1, e.Data["rank"]);
        Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), $"the world took {clock.Elapsed} to stop");
    }

    [Fact]
    public void AWorldLargerThanTheMachineIsRefused()
    {
        GpuRequirement.Require(1);
        CudaBackend.TryGetDeviceCount(out int count, out _);
        var e = Assert.Throws<InvalidOperationException>(() => CudaWorld.Run(count + 1, _ => { }));
        Assert.Contains($"{count} GPUs are present", e.Message);
    }
}
