using ModelParallel.Cli;
using ModelParallel.Runtime;
using ModelParallel.Runtime.Cuda;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Gpu;

/// <summary>Every NCCL collective on 2 and 4 GPUs (threads of this process, one GPU each), in BFloat16 and Float32,
/// against results computed on the host in float64 from the same rounded inputs.</summary>
[Trait("Category", GpuRequirement.Category)]
[Collection(GpuCollection.Name)]
public class NcclCollectiveTests
{
    private static readonly int[] Counts = [1, 4099];

    public static TheoryData<int, DType> Worlds => new()
    {
        { 2, DType.Float32 },
        { 2, DType.BFloat16 },
        { 4, DType.Float32 },
        { 4, DType.BFloat16 },
    };

    [Theory]
    [MemberData(nameof(Worlds))]
    public void AllReduceWithEveryOperation(int gpus, DType dtype)
    {
        GpuRequirement.Require(gpus);
        foreach (var (count, inputs) in Cases(gpus, dtype))
        {
            foreach (var op in Enum.GetValues<ReduceOp>())
            {
                double[] expected = HostReference.Reduce(inputs, op);
                var errors = CudaWorld.Run(gpus, ctx =>
                {
                    var backend = ctx.Backend;
                    using var send = TestTensors.Upload(backend, inputs[ctx.Rank], dtype);
                    using var recv = TestTensors.Poisoned(backend, count, dtype);
                    ctx.World.AllReduce(send, recv, op);
                    double outOfPlace = Numerics.RelativeError(TestTensors.Download(recv), expected);
                    ctx.World.AllReduce(send, send, op);
                    double inPlace = Numerics.RelativeError(TestTensors.Download(send), expected);
                    return Math.Max(outOfPlace, inPlace);
                });
                AssertWithin(errors, GpuTwin.Tolerance(dtype), $"all-reduce {op} of {count} x {dtype} on {gpus} GPUs");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Worlds))]
    public void AllGatherConcatenatesInRankOrder(int gpus, DType dtype)
    {
        GpuRequirement.Require(gpus);
        foreach (var (count, inputs) in Cases(gpus, dtype))
        {
            double[] expected = [.. inputs.SelectMany(x => x)];
            var errors = CudaWorld.Run(gpus, ctx =>
            {
                var backend = ctx.Backend;
                using var send = TestTensors.Upload(backend, inputs[ctx.Rank], dtype);
                using var recv = TestTensors.Poisoned(backend, (long)gpus * count, dtype);
                ctx.World.AllGather(send, recv);
                double outOfPlace = Numerics.RelativeError(TestTensors.Download(recv), expected);
                using var inPlace = TestTensors.Poisoned(backend, (long)gpus * count, dtype);
                var own = inPlace.Slice((long)ctx.Rank * count, count);
                backend.Upload(own, inputs[ctx.Rank]);
                ctx.World.AllGather(own, inPlace);
                return Math.Max(outOfPlace, Numerics.RelativeError(TestTensors.Download(inPlace), expected));
            });
            AssertWithin(errors, 0, $"all-gather of {count} x {dtype} per rank on {gpus} GPUs");
        }
    }

    [Theory]
    [MemberData(nameof(Worlds))]
    public void ReduceScatterGivesEachRankItsBlock(int gpus, DType dtype)
    {
        GpuRequirement.Require(gpus);
        foreach (var (count, inputs) in Cases(gpus, dtype, blocks: gpus))
        {
            foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Max, ReduceOp.Avg })
            {
                double[] reduced = HostReference.Reduce(inputs, op);
                var errors = CudaWorld.Run(gpus, ctx =>
                {
                    var backend = ctx.Backend;
                    using var send = TestTensors.Upload(backend, inputs[ctx.Rank], dtype);
                    using var recv = TestTensors.Poisoned(backend, count, dtype);
                    ctx.World.ReduceScatter(send, recv, op);
                    return Numerics.RelativeError(TestTensors.Download(recv), reduced.AsSpan(ctx.Rank * count, count));
                });
                AssertWithin(errors, GpuTwin.Tolerance(dtype), $"reduce-scatter {op} of {count} x {dtype} per rank on {gpus} GPUs");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Worlds))]
    public void BroadcastCopiesTheRootsTensor(int gpus, DType dtype)
    {
        GpuRequirement.Require(gpus);
        int root = gpus - 1;
        foreach (var (count, inputs) in Cases(gpus, dtype))
        {
            var errors = CudaWorld.Run(gpus, ctx =>
            {
                var backend = ctx.Backend;
                using var send = TestTensors.Upload(backend, inputs[ctx.Rank], dtype);
                using var recv = TestTensors.Poisoned(backend, count, dtype);
                ctx.World.Broadcast(send, recv, root);
                double outOfPlace = Numerics.RelativeError(TestTensors.Download(recv), inputs[root]);
                ctx.World.Broadcast(send, send, root);
                return Math.Max(outOfPlace, Numerics.RelativeError(TestTensors.Download(send), inputs[root]));
            });
            AssertWithin(errors, 0, $"broadcast of {count} x {dtype} from rank {root} on {gpus} GPUs");
        }
    }

    [Theory]
    [MemberData(nameof(Worlds))]
    public void ReduceLeavesTheResultOnTheRoot(int gpus, DType dtype)
    {
        GpuRequirement.Require(gpus);
        foreach (var (count, inputs) in Cases(gpus, dtype))
        {
            foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Min })
            {
                double[] expected = HostReference.Reduce(inputs, op);
                var errors = CudaWorld.Run(gpus, ctx =>
                {
                    var backend = ctx.Backend;
                    using var send = TestTensors.Upload(backend, inputs[ctx.Rank], dtype);
                    using var recv = TestTensors.Poisoned(backend, count, dtype);
                    ctx.World.Reduce(send, recv, op, root: 0);
                    return ctx.Rank == 0 ? Numerics.RelativeError(TestTensors.Download(recv), expected) : 0;
                });
                AssertWithin(errors, GpuTwin.Tolerance(dtype), $"reduce {op} of {count} x {dtype} to rank 0 on {gpus} GPUs");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Worlds))]
    public void SendAndReceiveBetweenPairs(int gpus, DType dtype)
    {
        GpuRequirement.Require(gpus);
        foreach (var (count, inputs) in Cases(gpus, dtype))
        {
            var errors = CudaWorld.Run(gpus, ctx =>
            {
                var backend = ctx.Backend;
                int peer = ctx.Rank ^ 1;
                using var mine = TestTensors.Upload(backend, inputs[ctx.Rank], dtype);
                using var theirs = TestTensors.Poisoned(backend, count, dtype);
                // Even ranks send first, odd ranks receive first: both directions of each pair.
                if (ctx.Rank % 2 == 0)
                {
                    ctx.World.Send(mine, peer);
                    ctx.World.Recv(theirs, peer);
                }
                else
                {
                    ctx.World.Recv(theirs, peer);
                    ctx.World.Send(mine, peer);
                }
                return Numerics.RelativeError(TestTensors.Download(theirs), inputs[peer]);
            });
            AssertWithin(errors, 0, $"send/recv of {count} x {dtype} between pairs of {gpus} GPUs");
        }
    }

    [Theory]
    [MemberData(nameof(Worlds))]
    public void SendRecvAroundARing(int gpus, DType dtype)
    {
        GpuRequirement.Require(gpus);
        foreach (var (count, inputs) in Cases(gpus, dtype))
        {
            var errors = CudaWorld.Run(gpus, ctx =>
            {
                var backend = ctx.Backend;
                int next = (ctx.Rank + 1) % gpus, previous = (ctx.Rank + gpus - 1) % gpus;
                using var mine = TestTensors.Upload(backend, inputs[ctx.Rank], dtype);
                using var received = TestTensors.Poisoned(backend, count, dtype);
                ctx.World.SendRecv(mine, next, received, previous);
                return Numerics.RelativeError(TestTensors.Download(received), inputs[previous]);
            });
            AssertWithin(errors, 0, $"send-recv ring of {count} x {dtype} on {gpus} GPUs");
        }
    }

    [Theory]
    [MemberData(nameof(Worlds))]
    public void SplitFormsGroupsOrderedByKey(int gpus, DType dtype)
    {
        GpuRequirement.Require(gpus);
        var rng = TestRandom.Create();
        var inputs = Inputs(rng, gpus, 257, dtype);
        var results = CudaWorld.Run(gpus, ctx =>
        {
            var backend = ctx.Backend;
            int color = ctx.Rank % 2;
            using var group = ctx.World.Split(color, key: -ctx.Rank);
            int[] members = [.. Enumerable.Range(0, gpus).Where(r => r % 2 == color).OrderByDescending(r => r)];
            using var send = TestTensors.Upload(backend, inputs[ctx.Rank], dtype);
            using var recv = TestTensors.Poisoned(backend, 257, dtype);
            group.AllReduce(send, recv);
            double error = Numerics.RelativeError(TestTensors.Download(recv), HostReference.Reduce([.. members.Select(r => inputs[r])], ReduceOp.Sum));
            return (group.Rank, group.Size, Expected: Array.IndexOf(members, ctx.Rank), members.Length, error);
        });
        foreach (var (rank, size, expectedRank, expectedSize, error) in results)
        {
            Assert.Equal(expectedRank, rank);
            Assert.Equal(expectedSize, size);
            Assert.True(error <= GpuTwin.Tolerance(dtype), $"all-reduce in a split group: relative error {error:E3}");
        }
    }

    [Fact]
    public void ProcessGroupsSplitTheWorldInMegatronOrder()
    {
        GpuRequirement.Require(4);
        var groups = CudaWorld.Run(4, ctx =>
        {
            using var pg = ProcessGroups.Create(ctx.World, tensorParallel: 2);
            using var value = TestTensors.Upload(ctx.Backend, [ctx.Rank + 1.0], DType.Float32);
            pg.TensorParallel.AllReduce(value, value);
            double tpSum = TestTensors.Download(value)[0];
            return (pg.TensorParallel.Rank, pg.DataParallel.Rank, tpSum);
        });
        for (int rank = 0; rank < 4; rank++)
        {
            Assert.Equal(rank % 2, groups[rank].Item1);
            Assert.Equal(rank / 2, groups[rank].Item2);
            int first = rank / 2 * 2;
            Assert.Equal(first + 1 + first + 2, groups[rank].tpSum);
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void MismatchedSizesThrowNamingBoth(int gpus)
    {
        GpuRequirement.Require(gpus);
        var messages = CudaWorld.Run(gpus, ctx =>
        {
            using var send = ctx.Backend.Allocate(DType.Float32, 10);
            using var recv = ctx.Backend.Allocate(DType.Float32, 11);
            using var other = ctx.Backend.Allocate(DType.BFloat16, 10);
            var sizes = Assert.Throws<ArgumentException>(() => ctx.World.AllGather(send, recv));
            var types = Assert.Throws<ArgumentException>(() => ctx.World.AllReduce(send, other));
            Assert.Throws<ArgumentOutOfRangeException>(() => ctx.World.Broadcast(send, send, gpus));
            return sizes.Message + " | " + types.Message;
        });
        Assert.All(messages, m =>
        {
            Assert.Contains("11", m);
            Assert.Contains($"{gpus * 10}", m);
            Assert.Contains("BFloat16", m);
        });
    }

    /// <summary>For each of <see cref="Counts"/>: fresh inputs of count * <paramref name="blocks"/> values per rank.</summary>
    private static IEnumerable<(int Count, double[][] Inputs)> Cases(int gpus, DType dtype, int blocks = 1)
    {
        var rng = TestRandom.Create();
        foreach (int count in Counts)
        {
            yield return (count, Inputs(rng, gpus, count * blocks, dtype));
        }
    }

    internal static double[][] Inputs(Random rng, int ranks, int count, DType dtype) =>
        [.. Enumerable.Range(0, ranks).Select(_ => Numerics.RandomArray(rng, count).Select(v => GpuTwin.Round(v, dtype)).ToArray())];

    private static void AssertWithin(double[] errors, double tolerance, string what)
    {
        for (int rank = 0; rank < errors.Length; rank++)
        {
            Assert.True(errors[rank] <= tolerance,
                $"{what}: rank {rank} relative error {errors[rank]:E3} exceeds {tolerance:E1} ({TestRandom.Describe()})");
        }
    }
}
