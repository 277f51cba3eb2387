using System.Diagnostics;
using ModelParallel.Cli;
using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Runtime.Cuda;
using ModelParallel.Tests.Layers;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Gpu;

/// <summary>
/// Every collective of <see cref="SameDeviceCommunicator"/> with 2, 3 and 4 ranks sharing one GPU, in Float32 and
/// BFloat16, against results computed on the host in float64 from the same rounded inputs; fresh inputs each
/// iteration, outputs poisoned. To catch missing event ordering, each rank writes its send buffer late (poisoned, then
/// its stream kept busy, then written) with one slow rank per iteration, and overwrites it with NaN right after the
/// call: a peer reading before the write or after the overwrite sees NaN.
/// </summary>
[Trait("Category", GpuRequirement.Category)]
[Collection(GpuCollection.Name)]
public class SameDeviceWorldTests
{
    private const int Iterations = 4;

    private static readonly int[] Counts = [1, 4099, 1 << 18];

    public static TheoryData<int, DType> Worlds => new()
    {
        { 2, DType.Float32 },
        { 2, DType.BFloat16 },
        { 3, DType.Float32 },
        { 3, DType.BFloat16 },
        { 4, DType.Float32 },
        { 4, DType.BFloat16 },
    };

    [Fact]
    public void RanksShareDeviceZeroWithAStreamEach()
    {
        GpuRequirement.Require();
        var seen = SameDeviceWorld.Run(3, ctx =>
        {
            var backend = (CudaBackend)ctx.Backend;
            return (ctx.Rank, ctx.WorldSize, backend.Device, Stream: backend.Stream, Communicator: ctx.World.GetType());
        });
        Assert.Equal(new[] { 0, 1, 2 }, seen.Select(s => s.Rank));
        Assert.All(seen, s => Assert.Equal((3, 0, typeof(SameDeviceCommunicator)), (s.WorldSize, s.Device, s.Communicator)));
        Assert.Equal(3, seen.Select(s => s.Stream).Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(Worlds))]
    public void AllReduceMatchesTheHostAndIsBitwiseEqualOnEveryRank(int ranks, DType dtype)
    {
        GpuRequirement.Require();
        var rng = TestRandom.Create();
        foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Max, ReduceOp.Avg })
        {
            foreach (int count in Counts)
            {
                var inputs = FreshInputs(rng, ranks, count, dtype);
                var outputs = SameDeviceWorld.Run(ranks, ctx =>
                {
                    var backend = ctx.Backend;
                    using var busy = new Busy(backend);
                    using var send = backend.Allocate(dtype, count);
                    using var recv = backend.Allocate(dtype, count);
                    var results = new double[2 * Iterations][];
                    for (int i = 0; i < Iterations; i++)
                    {
                        backend.Kernels.Fill(recv, double.NaN);
                        busy.WriteLate(ctx, send, inputs[i][ctx.Rank], i);
                        ctx.World.AllReduce(send, recv, op);
                        backend.Kernels.Fill(send, double.NaN);
                        results[2 * i] = TestTensors.Download(recv);
                        // In place: the result lands in send only after every peer has read it.
                        busy.WriteLate(ctx, send, inputs[i][ctx.Rank], i + 1);
                        ctx.World.AllReduce(send, send, op);
                        results[2 * i + 1] = TestTensors.Download(send);
                    }
                    return results;
                });
                for (int i = 0; i < Iterations; i++)
                {
                    double[] expected = HostReference.Reduce(inputs[i], op);
                    for (int rank = 0; rank < ranks; rank++)
                    {
                        foreach (int k in new[] { 2 * i, 2 * i + 1 })
                        {
                            AssertWithin(outputs[rank][k], expected, Tolerance(op, dtype),
                                $"all-reduce {op} of {count} x {dtype}, iteration {i}{(k % 2 == 1 ? " in place" : "")}, rank {rank} of {ranks}");
                            AssertBitwiseEqual(outputs[0][k], outputs[rank][k], $"all-reduce {op} on rank {rank} and on rank 0");
                        }
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Worlds))]
    public void ReduceScatterGivesEachRankItsBlock(int ranks, DType dtype)
    {
        GpuRequirement.Require();
        var rng = TestRandom.Create();
        foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Max, ReduceOp.Avg })
        {
            foreach (int count in Counts)
            {
                var inputs = FreshInputs(rng, ranks, ranks * count, dtype);
                var outputs = SameDeviceWorld.Run(ranks, ctx =>
                {
                    var backend = ctx.Backend;
                    using var busy = new Busy(backend);
                    using var send = backend.Allocate(dtype, (long)ranks * count);
                    using var recv = backend.Allocate(dtype, count);
                    var results = new double[2 * Iterations][];
                    for (int i = 0; i < Iterations; i++)
                    {
                        backend.Kernels.Fill(recv, double.NaN);
                        busy.WriteLate(ctx, send, inputs[i][ctx.Rank], i);
                        ctx.World.ReduceScatter(send, recv, op);
                        backend.Kernels.Fill(send, double.NaN);
                        results[2 * i] = TestTensors.Download(recv);
                        busy.WriteLate(ctx, send, inputs[i][ctx.Rank], i + 1);
                        var own = send.Slice((long)ctx.Rank * count, count);
                        ctx.World.ReduceScatter(send, own, op);
                        results[2 * i + 1] = TestTensors.Download(own);
                    }
                    return results;
                });
                for (int i = 0; i < Iterations; i++)
                {
                    double[] reduced = HostReference.Reduce(inputs[i], op);
                    for (int rank = 0; rank < ranks; rank++)
                    {
                        double[] block = reduced.AsSpan(rank * count, count).ToArray();
                        AssertWithin(outputs[rank][2 * i], block, Tolerance(op, dtype),
                            $"reduce-scatter {op} of {count} x {dtype} per rank, iteration {i}, rank {rank} of {ranks}");
                        AssertWithin(outputs[rank][2 * i + 1], block, Tolerance(op, dtype),
                            $"reduce-scatter {op} in place of {count} x {dtype} per rank, iteration {i}, rank {rank} of {ranks}");
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Worlds))]
    public void AllGatherConcatenatesInRankOrder(int ranks, DType dtype)
    {
        GpuRequirement.Require();
        var rng = TestRandom.Create();
        foreach (int count in Counts)
        {
            var inputs = FreshInputs(rng, ranks, count, dtype);
            var outputs = SameDeviceWorld.Run(ranks, ctx =>
            {
                var backend = ctx.Backend;
                using var busy = new Busy(backend);
                using var send = backend.Allocate(dtype, count);
                using var recv = backend.Allocate(dtype, (long)ranks * count);
                using var inPlace = backend.Allocate(dtype, (long)ranks * count);
                var own = inPlace.Slice((long)ctx.Rank * count, count);
                var results = new double[2 * Iterations][];
                for (int i = 0; i < Iterations; i++)
                {
                    backend.Kernels.Fill(recv, double.NaN);
                    busy.WriteLate(ctx, send, inputs[i][ctx.Rank], i);
                    ctx.World.AllGather(send, recv);
                    backend.Kernels.Fill(send, double.NaN);
                    results[2 * i] = TestTensors.Download(recv);
                    backend.Kernels.Fill(inPlace, double.NaN);
                    busy.WriteLate(ctx, own, inputs[i][ctx.Rank], i + 1);
                    ctx.World.AllGather(own, inPlace);
                    results[2 * i + 1] = TestTensors.Download(inPlace);
                }
                return results;
            });
            for (int i = 0; i < Iterations; i++)
            {
                double[] expected = [.. inputs[i].SelectMany(x => x)];
                for (int rank = 0; rank < ranks; rank++)
                {
                    AssertWithin(outputs[rank][2 * i], expected, 0, $"all-gather of {count} x {dtype}, iteration {i}, rank {rank} of {ranks}");
                    AssertWithin(outputs[rank][2 * i + 1], expected, 0,
                        $"all-gather in place of {count} x {dtype}, iteration {i}, rank {rank} of {ranks}");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Worlds))]
    public void BroadcastCopiesTheRootsTensorFromEveryRoot(int ranks, DType dtype)
    {
        GpuRequirement.Require();
        var rng = TestRandom.Create();
        foreach (int count in Counts)
        {
            var inputs = FreshInputs(rng, ranks, count, dtype);
            var outputs = SameDeviceWorld.Run(ranks, ctx =>
            {
                var backend = ctx.Backend;
                using var busy = new Busy(backend);
                using var send = backend.Allocate(dtype, count);
                using var recv = backend.Allocate(dtype, count);
                var results = new double[2 * Iterations][];
                for (int i = 0; i < Iterations; i++)
                {
                    int root = i % ranks;
                    backend.Kernels.Fill(recv, double.NaN);
                    busy.WriteLate(ctx, send, inputs[i][ctx.Rank], i);
                    ctx.World.Broadcast(send, recv, root);
                    backend.Kernels.Fill(send, double.NaN);
                    results[2 * i] = TestTensors.Download(recv);
                    busy.WriteLate(ctx, send, inputs[i][ctx.Rank], i + 1);
                    ctx.World.Broadcast(send, send, root);
                    results[2 * i + 1] = TestTensors.Download(send);
                }
                return results;
            });
            for (int i = 0; i < Iterations; i++)
            {
                int root = i % ranks;
                for (int rank = 0; rank < ranks; rank++)
                {
                    AssertWithin(outputs[rank][2 * i], inputs[i][root], 0,
                        $"broadcast of {count} x {dtype} from rank {root}, rank {rank} of {ranks}");
                    AssertWithin(outputs[rank][2 * i + 1], inputs[i][root], 0,
                        $"broadcast in place of {count} x {dtype} from rank {root}, rank {rank} of {ranks}");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Worlds))]
    public void ReduceLeavesTheResultOnEveryRootInTurn(int ranks, DType dtype)
    {
        GpuRequirement.Require();
        var rng = TestRandom.Create();
        foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Max })
        {
            foreach (int count in Counts)
            {
                var inputs = FreshInputs(rng, ranks, count, dtype);
                var outputs = SameDeviceWorld.Run(ranks, ctx =>
                {
                    var backend = ctx.Backend;
                    using var busy = new Busy(backend);
                    using var send = backend.Allocate(dtype, count);
                    using var recv = backend.Allocate(dtype, count);
                    var results = new double[Iterations][];
                    for (int i = 0; i < Iterations; i++)
                    {
                        int root = i % ranks;
                        backend.Kernels.Fill(recv, double.NaN);
                        busy.WriteLate(ctx, send, inputs[i][ctx.Rank], i);
                        ctx.World.Reduce(send, recv, op, root);
                        backend.Kernels.Fill(send, double.NaN);
                        results[i] = TestTensors.Download(recv);
                    }
                    return results;
                });
                for (int i = 0; i < Iterations; i++)
                {
                    int root = i % ranks;
                    AssertWithin(outputs[root][i], HostReference.Reduce(inputs[i], op), Tolerance(op, dtype),
                        $"reduce {op} of {count} x {dtype} to rank {root} of {ranks}, iteration {i}");
                    for (int rank = 0; rank < ranks; rank++)
                    {
                        if (rank != root)
                        {
                            Assert.All(outputs[rank][i], v => Assert.True(double.IsNaN(v), $"reduce wrote rank {rank}'s recv, not its root's"));
                        }
                    }
                }
            }
        }
    }

    /// <summary>A pipeline's pattern: activations forward (rank r receives from r-1, then sends to r+1), gradients
    /// back (the reverse), each rank sending its own tensor.</summary>
    [Theory]
    [MemberData(nameof(Worlds))]
    public void SendAndRecvAlongAPipelineBothWays(int ranks, DType dtype)
    {
        GpuRequirement.Require();
        var rng = TestRandom.Create();
        foreach (int count in Counts)
        {
            var inputs = FreshInputs(rng, ranks, count, dtype);
            var outputs = SameDeviceWorld.Run(ranks, ctx =>
            {
                var backend = ctx.Backend;
                int rank = ctx.Rank;
                using var busy = new Busy(backend);
                using var mine = backend.Allocate(dtype, count);
                using var fromPrevious = backend.Allocate(dtype, count);
                using var fromNext = backend.Allocate(dtype, count);
                var results = new double[2 * Iterations][];
                for (int i = 0; i < Iterations; i++)
                {
                    backend.Kernels.Fill(fromPrevious, double.NaN);
                    backend.Kernels.Fill(fromNext, double.NaN);
                    busy.WriteLate(ctx, mine, inputs[i][rank], i);
                    if (rank > 0)
                    {
                        ctx.World.Recv(fromPrevious, rank - 1);
                    }
                    if (rank < ranks - 1)
                    {
                        ctx.World.Send(mine, rank + 1);
                    }
                    busy.WriteLate(ctx, mine, inputs[i][rank], i + 1);
                    if (rank < ranks - 1)
                    {
                        ctx.World.Recv(fromNext, rank + 1);
                    }
                    if (rank > 0)
                    {
                        ctx.World.Send(mine, rank - 1);
                    }
                    backend.Kernels.Fill(mine, double.NaN);
                    results[2 * i] = TestTensors.Download(fromPrevious);
                    results[2 * i + 1] = TestTensors.Download(fromNext);
                }
                return results;
            });
            for (int i = 0; i < Iterations; i++)
            {
                for (int rank = 0; rank < ranks; rank++)
                {
                    if (rank > 0)
                    {
                        AssertWithin(outputs[rank][2 * i], inputs[i][rank - 1], 0,
                            $"recv of {count} x {dtype} from rank {rank - 1} on rank {rank}, iteration {i}");
                    }
                    if (rank < ranks - 1)
                    {
                        AssertWithin(outputs[rank][2 * i + 1], inputs[i][rank + 1], 0,
                            $"recv of {count} x {dtype} from rank {rank + 1} on rank {rank}, iteration {i}");
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Worlds))]
    public void SendRecvAroundARing(int ranks, DType dtype)
    {
        GpuRequirement.Require();
        var rng = TestRandom.Create();
        foreach (int count in Counts)
        {
            var inputs = FreshInputs(rng, ranks, count, dtype);
            var outputs = SameDeviceWorld.Run(ranks, ctx =>
            {
                var backend = ctx.Backend;
                int next = (ctx.Rank + 1) % ranks, previous = (ctx.Rank + ranks - 1) % ranks;
                using var busy = new Busy(backend);
                using var mine = backend.Allocate(dtype, count);
                using var received = backend.Allocate(dtype, count);
                var results = new double[Iterations][];
                for (int i = 0; i < Iterations; i++)
                {
                    backend.Kernels.Fill(received, double.NaN);
                    busy.WriteLate(ctx, mine, inputs[i][ctx.Rank], i);
                    ctx.World.SendRecv(mine, next, received, previous);
                    backend.Kernels.Fill(mine, double.NaN);
                    results[i] = TestTensors.Download(received);
                }
                return results;
            });
            for (int i = 0; i < Iterations; i++)
            {
                for (int rank = 0; rank < ranks; rank++)
                {
                    int previous = (rank + ranks - 1) % ranks;
                    AssertWithin(outputs[rank][i], inputs[i][previous], 0,
                        $"send-recv ring of {count} x {dtype} on rank {rank} of {ranks}, iteration {i}");
                }
            }
        }
    }

    /// <summary>
    /// Batched transfers both ways around a ring run on the transfer stream: the received tensor is right once the
    /// compute stream waits for the group (the sender poisons its tensor late on its own stream, the receiver poisons
    /// its buffer right before the call and keeps its compute stream busy after it), and the sent tensor may be
    /// overwritten once the group says it is complete or has been waited for.
    /// </summary>
    [Theory]
    [MemberData(nameof(Worlds))]
    public void BatchedTransfersRunBesideTheComputeStream(int ranks, DType dtype)
    {
        GpuRequirement.Require();
        var rng = TestRandom.Create();
        foreach (int count in Counts)
        {
            var inputs = FreshInputs(rng, ranks, count, dtype);
            var outputs = SameDeviceWorld.Run(ranks, ctx =>
            {
                var backend = ctx.Backend;
                int next = (ctx.Rank + 1) % ranks, previous = (ctx.Rank + ranks - 1) % ranks;
                using var busy = new Busy(backend);
                using var mine = backend.Allocate(dtype, count);
                using var fromPrevious = backend.Allocate(dtype, count);
                using var fromNext = backend.Allocate(dtype, count);
                using var later = backend.Allocate(dtype, 1);
                var results = new double[Iterations][];
                for (int i = 0; i < Iterations; i++)
                {
                    backend.Kernels.Fill(fromPrevious, double.NaN);
                    backend.Kernels.Fill(fromNext, double.NaN);
                    busy.WriteLate(ctx, mine, inputs[i][ctx.Rank], i);
                    var group = ctx.World.BatchSendRecv(
                    [
                        PeerTransfer.Send(mine, next), PeerTransfer.Recv(fromPrevious, previous),
                        PeerTransfer.Send(mine, previous), PeerTransfer.Recv(fromNext, next),
                    ]);
                    busy.WriteLate(ctx, later, [1.0], i + 1);
                    group.Wait();
                    Assert.True(group.IsComplete);
                    backend.Kernels.Fill(mine, double.NaN);
                    results[i] = [.. TestTensors.Download(fromPrevious), .. TestTensors.Download(fromNext)];
                }
                return results;
            });
            for (int i = 0; i < Iterations; i++)
            {
                for (int rank = 0; rank < ranks; rank++)
                {
                    int previous = (rank + ranks - 1) % ranks, next = (rank + 1) % ranks;
                    AssertWithin(outputs[rank][i], [.. inputs[i][previous], .. inputs[i][next]], 0,
                        $"batched ring of {count} x {dtype} on rank {rank} of {ranks}, iteration {i}");
                }
            }
        }
    }

    /// <summary>Groups by parity, ordered by descending rank; collectives of the groups and of the world interleave.</summary>
    [Theory]
    [MemberData(nameof(Worlds))]
    public void SplitGroupsWorkBetweenWorldCollectives(int ranks, DType dtype)
    {
        GpuRequirement.Require();
        const int count = 4099;
        var rng = TestRandom.Create();
        var inputs = FreshInputs(rng, ranks, count, dtype);
        var outputs = SameDeviceWorld.Run(ranks, ctx =>
        {
            var backend = ctx.Backend;
            int color = ctx.Rank % 2;
            using var group = ctx.World.Split(color, key: -ctx.Rank);
            using var busy = new Busy(backend);
            using var send = backend.Allocate(dtype, count);
            using var groupSum = backend.Allocate(dtype, count);
            using var gathered = backend.Allocate(dtype, (long)ranks * count);
            var results = new double[2 * Iterations][];
            for (int i = 0; i < Iterations; i++)
            {
                backend.Kernels.Fill(groupSum, double.NaN);
                backend.Kernels.Fill(gathered, double.NaN);
                busy.WriteLate(ctx, send, inputs[i][ctx.Rank], i);
                group.AllReduce(send, groupSum);
                ctx.World.AllGather(send, gathered);
                backend.Kernels.Fill(send, double.NaN);
                results[2 * i] = TestTensors.Download(groupSum);
                results[2 * i + 1] = TestTensors.Download(gathered);
            }
            return (group.Rank, group.Size, results);
        });
        for (int rank = 0; rank < ranks; rank++)
        {
            int[] members = [.. Enumerable.Range(0, ranks).Where(r => r % 2 == rank % 2).OrderByDescending(r => r)];
            Assert.Equal(Array.IndexOf(members, rank), outputs[rank].Rank);
            Assert.Equal(members.Length, outputs[rank].Size);
            for (int i = 0; i < Iterations; i++)
            {
                AssertWithin(outputs[rank].results[2 * i], HostReference.Reduce([.. members.Select(r => inputs[i][r])], ReduceOp.Sum),
                    GpuTwin.Tolerance(dtype), $"all-reduce in the group of rank {rank}, iteration {i}");
                AssertWithin(outputs[rank].results[2 * i + 1], [.. inputs[i].SelectMany(x => x)], 0,
                    $"world all-gather after the group's all-reduce on rank {rank}, iteration {i}");
            }
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task ARankThatThrowsMidLoopFailsTheOthersInsteadOfHangingThem(int ranks)
    {
        GpuRequirement.Require();
        var clock = Stopwatch.StartNew();
        var run = Task.Run(() => SameDeviceWorld.Run(ranks, ctx =>
        {
            using var value = ctx.Backend.Allocate(DType.Float32, 4099);
            ctx.Backend.Kernels.Fill(value, 1);
            for (int i = 0; i < 5; i++)
            {
                if (ctx.Rank == 1 && i == 3)
                {
                    throw new InvalidOperationException("rank 1 fails in the middle of the loop");
                }
                ctx.World.AllReduce(value, value);
                if (ctx.Rank == 0)
                {
                    ctx.World.Send(value, 1);
                }
                else if (ctx.Rank == 1)
                {
                    ctx.World.Recv(value, 0);
                }
            }
        }), TestContext.Current.CancellationToken);
        var first = await Task.WhenAny(run, Task.Delay(TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken));
        Assert.True(first == run, $"the world still runs after {clock.Elapsed}: a rank hangs");
        var e = await Assert.ThrowsAsync<RankFailedException>(() => run);
        Assert.Equal(1, e.Rank);
        Assert.IsType<InvalidOperationException>(e.InnerException);
        Assert.Contains("rank 1 fails in the middle of the loop", e.Message);
    }

    [Fact]
    public void ReductionsOtherThanSumAvgAndMaxThrowNamingTheOperation()
    {
        GpuRequirement.Require();
        var messages = SameDeviceWorld.Run(2, ctx =>
        {
            using var value = ctx.Backend.Allocate(DType.Float32, 8);
            using var wide = ctx.Backend.Allocate(DType.Float64, 8);
            var prod = Assert.Throws<NotSupportedException>(() => ctx.World.AllReduce(value, value, ReduceOp.Prod));
            var min = Assert.Throws<NotSupportedException>(() => ctx.World.ReduceScatter(value, value.Slice(ctx.Rank * 4, 4), ReduceOp.Min));
            var dtype = Assert.Throws<NotSupportedException>(() => ctx.World.AllReduce(wide, wide));
            // Copies take any dtype.
            ctx.Backend.Kernels.Fill(wide, ctx.Rank + 1);
            ctx.World.Broadcast(wide, wide, root: 1);
            Assert.All(TestTensors.Download(wide), v => Assert.Equal(2, v));
            return (prod.Message, min.Message, dtype.Message);
        });
        Assert.All(messages, m =>
        {
            Assert.Contains("Prod", m.Item1);
            Assert.Contains("Min", m.Item2);
            Assert.Contains("Float64", m.Item3);
        });
    }

    [Fact]
    public void MismatchedCollectivesThrowOnEveryRankNamingBoth()
    {
        GpuRequirement.Require();
        var messages = SameDeviceWorld.Run(2, ctx =>
        {
            using var value = ctx.Backend.Allocate(DType.Float32, ctx.Rank == 0 ? 10 : 11);
            var e = Assert.Throws<ArgumentException>(() => ctx.World.AllReduce(value, value));
            // The world still works after a mismatch.
            using var one = TestTensors.Upload(ctx.Backend, [ctx.Rank + 1.0], DType.Float32);
            ctx.World.AllReduce(one, one);
            Assert.Equal(3, TestTensors.Download(one)[0]);
            return e.Message;
        });
        Assert.All(messages, m =>
        {
            Assert.Contains("10", m);
            Assert.Contains("11", m);
        });
    }

    /// <summary>The layers at TP 2 on two ranks of one GPU (bfloat16) against the float64 single-rank CPU reference.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LayersAtTensorParallelTwoMatchTheCpuReference(bool sp)
    {
        GpuRequirement.Require();
        const double tol = 1e-2;
        var world = new TestWorld(DType.BFloat16, (ranks, body) => ThreadWorlds.RunOnOneDevice(ranks, body));
        ColumnParallelLinearTests.AssertMatchesReference(world, 2, bias: true, gatherOutput: !sp, sp, LinearActivation.None, tol);
        // The CUDA attention kernels take head dimensions of 64 and 128.
        var llama = new TransformerConfig(512, AttentionHeads: 8, QueryGroups: 2, FfnHiddenSize: 1024);
        LayerHarness.AssertMatchesReference(world, 2, sp, TransformerLayerTests.Build(llama), new TokenShape(6, 2), llama.HiddenSize, tol);
    }

    /// <summary><see cref="Iterations"/> sets of fresh inputs, one array per rank, held exactly in <paramref name="dtype"/>.</summary>
    private static double[][][] FreshInputs(Random rng, int ranks, int count, DType dtype) =>
        [.. Enumerable.Range(0, Iterations).Select(_ => NcclCollectiveTests.Inputs(rng, ranks, count, dtype))];

    /// <summary>Max is exact; sums accumulate in float32 and round once to the dtype.</summary>
    private static double Tolerance(ReduceOp op, DType dtype) => op == ReduceOp.Max ? 0 : GpuTwin.Tolerance(dtype);

    private static void AssertWithin(double[] output, double[] expected, double tolerance, string what)
    {
        double error = Numerics.RelativeError(output, expected);
        Assert.True(error <= tolerance, $"{what}: relative error {error:E3} exceeds {tolerance:E1} ({TestRandom.Describe()})");
    }

    private static void AssertBitwiseEqual(double[] expected, double[] actual, string what)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.DoubleToInt64Bits(expected[i]) != BitConverter.DoubleToInt64Bits(actual[i]))
            {
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, not {expected[i]:R}");
            }
        }
    }

    /// <summary>Work that keeps a rank's stream busy: about 40 passes over 16 MiB on the iteration's slow rank.</summary>
    private sealed class Busy : IDisposable
    {
        private readonly IBackend _backend;
        private readonly Tensor _scratch;

        public Busy(IBackend backend)
        {
            _backend = backend;
            _scratch = backend.Allocate(DType.Float32, 1 << 22);
            backend.Kernels.Fill(_scratch, 0);
        }

        /// <summary>Poisons <paramref name="tensor"/>, keeps the stream busy (long on one rank per iteration, in turn),
        /// then uploads <paramref name="values"/>: a peer that reads it without waiting for this stream sees NaN.</summary>
        public void WriteLate(RankContext ctx, Tensor tensor, double[] values, int iteration)
        {
            _backend.Kernels.Fill(tensor, double.NaN);
            int passes = (ctx.Rank + iteration) % ctx.WorldSize == 0 ? 40 : 1;
            for (int p = 0; p < passes; p++)
            {
                _backend.Kernels.Axpy(_scratch, 0.5f, _scratch);
            }
            _backend.Upload(tensor, values);
        }

        public void Dispose() => _scratch.Dispose();
    }
}

/// <summary>Where no GPU can be used, a same-device world refuses to start, saying why, rather than running on the CPU.</summary>
public class SameDeviceWorldWithoutGpuTests
{
    [Fact]
    public void RunWithoutAGpuThrowsSayingWhy()
    {
        if (CudaBackend.TryGetDeviceCount(out _, out _))
        {
            Assert.Skip("a GPU is present: this checks the refusal where there is none");
        }
        var e = Assert.Throws<InvalidOperationException>(() => ThreadWorlds.RunOnOneDevice(2, _ => { }));
        Assert.Contains("same-device world of 2 ranks needs a GPU", e.Message);
    }
}
