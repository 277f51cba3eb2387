using ModelParallel.Cli;
using ModelParallel.Runtime;
using ModelParallel.Runtime.Cuda;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Gpu;

[Trait("Category", GpuRequirement.Category)]
[Collection(GpuCollection.Name)]
public class CudaGraphTests
{
    /// <summary>Each rank captures C = A_r B_r followed by an in-place all-reduce of C, replays it with new A
    /// contents, and gets sum over ranks of A_r B_r each time.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void CapturedGemmThenAllReduceReplays(int gpus)
    {
        GpuRequirement.Require(gpus);
        const int m = 48, n = 40, k = 32;
        const DType dtype = DType.BFloat16;
        var rng = TestRandom.Create();
        const int replays = 3;
        var a = Enumerable.Range(0, replays).Select(_ => NcclCollectiveTests.Inputs(rng, gpus, m * k, dtype)).ToArray();
        var b = NcclCollectiveTests.Inputs(rng, gpus, k * n, dtype);
        var expected = Enumerable.Range(0, replays).Select(replay =>
            HostReference.Reduce([.. Enumerable.Range(0, gpus).Select(r => Cpu.CpuReference.MatMul(a[replay][r], b[r], m, n, k, false, false))],
                ReduceOp.Sum)).ToArray();
        var errors = CudaWorld.Run(gpus, ctx =>
        {
            var backend = (CudaBackend)ctx.Backend;
            using var ta = TestTensors.Upload(backend, a[0][ctx.Rank], dtype);
            using var tb = TestTensors.Upload(backend, b[ctx.Rank], dtype);
            using var tc = TestTensors.Poisoned(backend, m * n, dtype);
            // Warm-up outside the capture: the GEMM plan and NCCL's connections are set up here.
            backend.Kernels.Gemm(tc, ta, tb, m, n, k, false, false);
            ctx.World.AllReduce(tc, tc);
            backend.Synchronize();
            using var graph = CudaGraph.Capture(backend.Stream, () =>
            {
                backend.Kernels.Gemm(tc, ta, tb, m, n, k, false, false);
                ctx.World.AllReduce(tc, tc);
            });
            var worst = 0.0;
            for (int replay = 0; replay < replays; replay++)
            {
                backend.Upload(ta, a[replay][ctx.Rank]);
                backend.Kernels.Fill(tc, double.NaN);
                graph.Replay(backend.Stream);
                worst = Math.Max(worst, Numerics.RelativeError(TestTensors.Download(tc), expected[replay]));
            }
            return worst;
        });
        Assert.All(errors, e => Assert.True(e <= GpuTwin.Tolerance(dtype), $"replayed graph: relative error {e:E3}"));
    }

    [Fact]
    public void AFailedCaptureLeavesTheStreamUsable()
    {
        GpuRequirement.Require(1);
        using var backend = new CudaBackend(0);
        Assert.Throws<InvalidOperationException>(() =>
            CudaGraph.Capture(backend.Stream, () => throw new InvalidOperationException("capture abandoned")));
        using var t = backend.Allocate(DType.Float32, 3);
        backend.Upload(t, [1.0, 2.0, 3.0]);
        Assert.Equal([1.0, 2.0, 3.0], TestTensors.Download(t));
    }
}
