using ModelParallel.Cli;
using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>Every collective of the thread communicator against results computed on the host in float64.</summary>
public sealed class CpuCollectiveTests
{
    private static readonly int[] Counts = [1, 7, 1023];

    /// <summary>Every world size from <paramref name="minRanks"/> to 8, in float32 and float64.</summary>
    public static TheoryData<int, DType> RanksAndTypes(int minRanks)
    {
        var data = new TheoryData<int, DType>();
        for (int ranks = minRanks; ranks <= 8; ranks++)
        {
            data.Add(ranks, DType.Float32);
            data.Add(ranks, DType.Float64);
        }
        return data;
    }

    /// <summary>
    /// Each rank's inputs: random multiples of 2^-10 in [-1, 1], never zero. Sums of a few of them are exact in
    /// float32, so a sum whose terms cancel (one element over 8 ranks) is compared exactly, not through the
    /// rounding of its partial sums.
    /// </summary>
    private static double[][] PerRank(Random rng, DType dtype, int ranks, int count) =>
        [.. Enumerable.Range(0, ranks).Select(_ => CpuTestKit.Random(rng, dtype, count)
            .Select(v => Math.Round(v * 1024) is var q && q != 0 ? q / 1024 : 1.0 / 1024).ToArray())];

    [Theory]
    [MemberData(nameof(RanksAndTypes), 1)]
    public void AllReduce_EveryOpAndCount_MatchesHost(int ranks, DType dtype)
    {
        var rng = TestRandom.Create();
        var cases = (from count in Counts
                     from op in Enum.GetValues<ReduceOp>()
                     select (count, op, inputs: PerRank(rng, dtype, ranks, count))).ToArray();
        var results = CpuWorld.Run(ranks, dtype, ctx => cases.Select(c =>
        {
            var send = TestTensors.Upload(ctx.Backend, c.inputs[ctx.Rank]);
            var recv = TestTensors.Poisoned(ctx.Backend, c.count);
            ctx.World.AllReduce(send, recv, c.op);
            return TestTensors.Download(recv);
        }).ToArray());
        for (int i = 0; i < cases.Length; i++)
        {
            var expected = HostReference.Reduce(cases[i].inputs, cases[i].op);
            for (int r = 0; r < ranks; r++)
            {
                Numerics.AssertClose(results[r][i], expected, CpuTestKit.Tolerance(dtype),
                    $"AllReduce {cases[i].op} of {cases[i].count} on rank {r} of {ranks}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(RanksAndTypes), 1)]
    public void AllGather_EveryCount_ConcatenatesInRankOrder(int ranks, DType dtype)
    {
        var rng = TestRandom.Create();
        var cases = Counts.Select(count => (count, inputs: PerRank(rng, dtype, ranks, count))).ToArray();
        var results = CpuWorld.Run(ranks, dtype, ctx => cases.Select(c =>
        {
            var send = TestTensors.Upload(ctx.Backend, c.inputs[ctx.Rank]);
            var recv = TestTensors.Poisoned(ctx.Backend, (long)ranks * c.count);
            ctx.World.AllGather(send, recv);
            return TestTensors.Download(recv);
        }).ToArray());
        for (int i = 0; i < cases.Length; i++)
        {
            var expected = cases[i].inputs.SelectMany(v => v).ToArray();
            for (int r = 0; r < ranks; r++)
            {
                Assert.Equal(expected, results[r][i]);
            }
        }
    }

    [Theory]
    [MemberData(nameof(RanksAndTypes), 1)]
    public void ReduceScatter_EveryOpAndCount_GivesEachRankItsBlock(int ranks, DType dtype)
    {
        var rng = TestRandom.Create();
        var cases = (from count in Counts
                     from op in Enum.GetValues<ReduceOp>()
                     select (count, op, inputs: PerRank(rng, dtype, ranks, ranks * count))).ToArray();
        var results = CpuWorld.Run(ranks, dtype, ctx => cases.Select(c =>
        {
            var send = TestTensors.Upload(ctx.Backend, c.inputs[ctx.Rank]);
            var recv = TestTensors.Poisoned(ctx.Backend, c.count);
            ctx.World.ReduceScatter(send, recv, c.op);
            return TestTensors.Download(recv);
        }).ToArray());
        for (int i = 0; i < cases.Length; i++)
        {
            var full = HostReference.Reduce(cases[i].inputs, cases[i].op);
            for (int r = 0; r < ranks; r++)
            {
                Numerics.AssertClose(results[r][i], full[(r * cases[i].count)..((r + 1) * cases[i].count)],
                    CpuTestKit.Tolerance(dtype), $"ReduceScatter {cases[i].op} of {cases[i].count} on rank {r} of {ranks}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(RanksAndTypes), 1)]
    public void Broadcast_EveryRootAndCount_CopiesRootsValues(int ranks, DType dtype)
    {
        var rng = TestRandom.Create();
        var cases = (from count in Counts
                     from root in Enumerable.Range(0, ranks)
                     select (count, root, inputs: PerRank(rng, dtype, ranks, count))).ToArray();
        var results = CpuWorld.Run(ranks, dtype, ctx => cases.Select(c =>
        {
            var send = TestTensors.Upload(ctx.Backend, c.inputs[ctx.Rank]);
            var recv = TestTensors.Poisoned(ctx.Backend, c.count);
            ctx.World.Broadcast(send, recv, c.root);
            return TestTensors.Download(recv);
        }).ToArray());
        for (int i = 0; i < cases.Length; i++)
        {
            for (int r = 0; r < ranks; r++)
            {
                Assert.Equal(cases[i].inputs[cases[i].root], results[r][i]);
            }
        }
    }

    [Theory]
    [MemberData(nameof(RanksAndTypes), 1)]
    public void Reduce_EveryRootOpAndCount_WritesRootOnly(int ranks, DType dtype)
    {
        var rng = TestRandom.Create();
        var cases = (from count in Counts
                     from op in Enum.GetValues<ReduceOp>()
                     select (count, op, root: rng.Next(ranks), inputs: PerRank(rng, dtype, ranks, count))).ToArray();
        var results = CpuWorld.Run(ranks, dtype, ctx => cases.Select(c =>
        {
            var send = TestTensors.Upload(ctx.Backend, c.inputs[ctx.Rank]);
            var recv = TestTensors.Poisoned(ctx.Backend, c.count);
            ctx.World.Reduce(send, recv, c.op, c.root);
            return TestTensors.Download(recv);
        }).ToArray());
        for (int i = 0; i < cases.Length; i++)
        {
            var expected = HostReference.Reduce(cases[i].inputs, cases[i].op);
            for (int r = 0; r < ranks; r++)
            {
                if (r == cases[i].root)
                {
                    Numerics.AssertClose(results[r][i], expected, CpuTestKit.Tolerance(dtype),
                        $"Reduce {cases[i].op} of {cases[i].count} to root {r} of {ranks}");
                }
                else
                {
                    Assert.All(results[r][i], value => Assert.True(double.IsNaN(value), "a non-root recv was written"));
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(RanksAndTypes), 1)]
    public void SendRecv_Ring_PassesEachRanksValuesToTheNext(int ranks, DType dtype)
    {
        var rng = TestRandom.Create();
        var cases = Counts.Select(count => (count, inputs: PerRank(rng, dtype, ranks, count))).ToArray();
        var results = CpuWorld.Run(ranks, dtype, ctx => cases.Select(c =>
        {
            var send = TestTensors.Upload(ctx.Backend, c.inputs[ctx.Rank]);
            var recv = TestTensors.Poisoned(ctx.Backend, c.count);
            ctx.World.SendRecv(send, (ctx.Rank + 1) % ranks, recv, (ctx.Rank + ranks - 1) % ranks);
            return TestTensors.Download(recv);
        }).ToArray());
        for (int i = 0; i < cases.Length; i++)
        {
            for (int r = 0; r < ranks; r++)
            {
                Assert.Equal(cases[i].inputs[(r + ranks - 1) % ranks], results[r][i]);
            }
        }
    }

    [Theory]
    [MemberData(nameof(RanksAndTypes), 2)]
    public void SendThenRecv_Ring_DeliversInOrder(int ranks, DType dtype)
    {
        // A blocking send to oneself cannot complete: SendRecv covers one rank.
        var rng = TestRandom.Create();
        var cases = Counts.Select(count => (count, inputs: PerRank(rng, dtype, ranks, count))).ToArray();
        var results = CpuWorld.Run(ranks, dtype, ctx =>
        {
            int next = (ctx.Rank + 1) % ranks, previous = (ctx.Rank + ranks - 1) % ranks;
            var sends = cases.Select(c => TestTensors.Upload(ctx.Backend, c.inputs[ctx.Rank])).ToArray();
            var recvs = cases.Select(c => TestTensors.Poisoned(ctx.Backend, c.count)).ToArray();
            // Even ranks send first and odd ranks receive first, so that every blocking send meets its receive.
            for (int i = 0; i < cases.Length; i++)
            {
                if (ctx.Rank % 2 == 0)
                {
                    ctx.World.Send(sends[i], next);
                    ctx.World.Recv(recvs[i], previous);
                }
                else
                {
                    ctx.World.Recv(recvs[i], previous);
                    ctx.World.Send(sends[i], next);
                }
            }
            return recvs.Select(t => TestTensors.Download(t)).ToArray();
        });
        for (int i = 0; i < cases.Length; i++)
        {
            for (int r = 0; r < ranks; r++)
            {
                Assert.Equal(cases[i].inputs[(r + ranks - 1) % ranks], results[r][i]);
            }
        }
    }

    [Theory]
    [InlineData(3, DType.Float32)]
    [InlineData(4, DType.Float64)]
    public void InPlaceCollectives_MatchHost(int ranks, DType dtype)
    {
        var rng = TestRandom.Create();
        const int count = 7;
        var reduceInputs = PerRank(rng, dtype, ranks, count);
        var gatherInputs = PerRank(rng, dtype, ranks, count);
        var scatterInputs = PerRank(rng, dtype, ranks, ranks * count);
        var broadcastInputs = PerRank(rng, dtype, ranks, count);
        const int root = 1;
        var results = CpuWorld.Run(ranks, dtype, ctx =>
        {
            var backend = ctx.Backend;
            var reduced = TestTensors.Upload(backend, reduceInputs[ctx.Rank]);
            ctx.World.AllReduce(reduced, reduced, ReduceOp.Sum);

            var gathered = TestTensors.Poisoned(backend, ranks * count);
            var own = gathered.Slice(ctx.Rank * count, count);
            backend.Upload(own, gatherInputs[ctx.Rank]);
            ctx.World.AllGather(own, gathered);

            var scattered = TestTensors.Upload(backend, scatterInputs[ctx.Rank]);
            ctx.World.ReduceScatter(scattered, scattered.Slice(ctx.Rank * count, count), ReduceOp.Max);

            var broadcast = TestTensors.Upload(backend, broadcastInputs[ctx.Rank]);
            ctx.World.Broadcast(broadcast, broadcast, root);

            var rootReduced = TestTensors.Upload(backend, reduceInputs[ctx.Rank]);
            ctx.World.Reduce(rootReduced, rootReduced, ReduceOp.Min, root);
            return new[]
            {
                TestTensors.Download(reduced), TestTensors.Download(gathered),
                TestTensors.Download(scattered)[(ctx.Rank * count)..((ctx.Rank + 1) * count)],
                TestTensors.Download(broadcast), TestTensors.Download(rootReduced),
            };
        });
        double tol = CpuTestKit.Tolerance(dtype);
        var maxScattered = HostReference.Reduce(scatterInputs, ReduceOp.Max);
        for (int r = 0; r < ranks; r++)
        {
            Numerics.AssertClose(results[r][0], HostReference.Reduce(reduceInputs, ReduceOp.Sum), tol, $"in-place AllReduce rank {r}");
            Assert.Equal(gatherInputs.SelectMany(v => v), results[r][1]);
            Assert.Equal(maxScattered[(r * count)..((r + 1) * count)], results[r][2]);
            Assert.Equal(broadcastInputs[root], results[r][3]);
            Assert.Equal(r == root ? HostReference.Reduce(reduceInputs, ReduceOp.Min) : reduceInputs[r], results[r][4]);
        }
    }

    [Fact]
    public void AllReduce_Int32_SumsAndTakesMaximumExactly()
    {
        var rng = TestRandom.Create();
        const int ranks = 3, count = 1023;
        var inputs = Enumerable.Range(0, ranks)
            .Select(_ => Enumerable.Range(0, count).Select(_ => rng.Next(-1000, 1000)).ToArray()).ToArray();
        var results = CpuWorld.Run(ranks, DType.Float32, ctx =>
        {
            var send = TestTensors.UploadInts(ctx.Backend, inputs[ctx.Rank]);
            var sum = ctx.Backend.Allocate(DType.Int32, count);
            var max = ctx.Backend.Allocate(DType.Int32, count);
            ctx.World.AllReduce(send, sum, ReduceOp.Sum);
            ctx.World.AllReduce(send, max, ReduceOp.Max);
            var values = new int[2][] { new int[count], new int[count] };
            ctx.Backend.Download(sum, values[0]);
            ctx.Backend.Download(max, values[1]);
            return values;
        });
        var expectedSum = Enumerable.Range(0, count).Select(i => inputs.Sum(v => v[i])).ToArray();
        var expectedMax = Enumerable.Range(0, count).Select(i => inputs.Max(v => v[i])).ToArray();
        foreach (var values in results)
        {
            Assert.Equal(expectedSum, values[0]);
            Assert.Equal(expectedMax, values[1]);
        }
    }

    [Fact]
    public void Run_ReturnsEachRanksResultInRankOrder()
    {
        var results = CpuWorld.Run(5, DType.Float64, ctx => (ctx.Rank, ctx.WorldSize, ctx.Backend.Compute));
        Assert.Equal(Enumerable.Range(0, 5).Select(r => (r, 5, DType.Float64)), results);
    }
}
