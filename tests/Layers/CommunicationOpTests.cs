using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Layers;

/// <summary>Forward and backward of each communication op against host-computed results, at TP 1, 2 and 4.</summary>
public class CommunicationOpTests
{
    private const int Rows = 8;
    private const int Cols = 12;
    private const double Tol = 1e-6;

    public static TheoryData<int> Degrees => [1, 2, 4];

    [Theory]
    [MemberData(nameof(Degrees))]
    public void CopyToIsIdentityForwardAndSumBackward(int tp)
    {
        var (xs, gs) = PerRank(tp, Rows * Cols, Rows * Cols);
        var results = RunOp(tp, (c, r) =>
        {
            var op = new CopyToTensorParallelRegion(c, "op");
            using var x = TestTensors.Upload(c.Backend, xs[r]);
            Assert.Same(x, op.Forward(x));
            using var g = TestTensors.Upload(c.Backend, gs[r]);
            return (TestTensors.Download(x), TestTensors.Download(op.Backward(g)));
        });
        for (int r = 0; r < tp; r++)
        {
            Numerics.AssertClose(results[r].Forward, xs[r], Tol, $"rank {r} forward");
            Numerics.AssertClose(results[r].Backward, Sum(gs), Tol, $"rank {r} backward");
        }
        AssertLogged(results, CommunicationPhase.Backward, CollectiveKind.AllReduce, tp, Rows * Cols);
    }

    [Theory]
    [MemberData(nameof(Degrees))]
    public void ReduceFromIsSumForwardAndIdentityBackward(int tp)
    {
        var (xs, gs) = PerRank(tp, Rows * Cols, Rows * Cols);
        var results = RunOp(tp, (c, r) =>
        {
            var op = new ReduceFromTensorParallelRegion(c, "op");
            using var x = TestTensors.Upload(c.Backend, xs[r]);
            var y = TestTensors.Download(op.Forward(x));
            using var g = TestTensors.Upload(c.Backend, gs[r]);
            Assert.Same(g, op.Backward(g));
            return (y, TestTensors.Download(g));
        });
        for (int r = 0; r < tp; r++)
        {
            Numerics.AssertClose(results[r].Forward, Sum(xs), Tol, $"rank {r} forward");
            Numerics.AssertClose(results[r].Backward, gs[r], Tol, $"rank {r} backward");
        }
        AssertLogged(results, CommunicationPhase.Forward, CollectiveKind.AllReduce, tp, Rows * Cols);
    }

    [Theory]
    [MemberData(nameof(Degrees))]
    public void ScatterToSplitsColumnsForwardAndGathersBackward(int tp)
    {
        var (xs, gs) = PerRank(tp, Rows * Cols, Rows * Cols / tp);
        var results = RunOp(tp, (c, r) =>
        {
            using var op = new ScatterToTensorParallelRegion(c, "op");
            using var x = TestTensors.Upload(c.Backend, xs[0]);
            var y = TestTensors.Download(op.Forward(x, Rows, Cols));
            using var g = TestTensors.Upload(c.Backend, gs[r]);
            return (y, TestTensors.Download(op.Backward(g)));
        });
        for (int r = 0; r < tp; r++)
        {
            Numerics.AssertClose(results[r].Forward, HostArrays.Columns(xs[0], Cols, r, tp), Tol, $"rank {r} forward");
            Numerics.AssertClose(results[r].Backward, HostArrays.ConcatColumns(gs, Rows), Tol, $"rank {r} backward");
        }
        AssertLogged(results, CommunicationPhase.Backward, CollectiveKind.AllGather, tp, Rows * Cols);
    }

    [Theory]
    [MemberData(nameof(Degrees))]
    public void GatherFromConcatenatesColumnsForwardAndSplitsBackward(int tp)
    {
        var (xs, gs) = PerRank(tp, Rows * Cols / tp, Rows * Cols);
        var results = RunOp(tp, (c, r) =>
        {
            using var op = new GatherFromTensorParallelRegion(c, "op");
            using var x = TestTensors.Upload(c.Backend, xs[r]);
            var y = TestTensors.Download(op.Forward(x, Rows, Cols / tp));
            using var g = TestTensors.Upload(c.Backend, gs[0]);
            return (y, TestTensors.Download(op.Backward(g)));
        });
        for (int r = 0; r < tp; r++)
        {
            Numerics.AssertClose(results[r].Forward, HostArrays.ConcatColumns(xs, Rows), Tol, $"rank {r} forward");
            Numerics.AssertClose(results[r].Backward, HostArrays.Columns(gs[0], Cols, r, tp), Tol, $"rank {r} backward");
        }
        AssertLogged(results, CommunicationPhase.Forward, CollectiveKind.AllGather, tp, Rows * Cols);
    }

    [Theory]
    [MemberData(nameof(Degrees))]
    public void GatherFromSequenceParallelGathersTokensForwardAndReduceScattersBackward(int tp)
    {
        var (xs, gs) = PerRank(tp, Rows / tp * Cols, Rows * Cols);
        var results = RunOp(tp, (c, r) =>
        {
            using var op = new GatherFromSequenceParallelRegion(c, "op");
            using var x = TestTensors.Upload(c.Backend, xs[r]);
            var y = TestTensors.Download(op.Forward(x, Rows / tp, Cols));
            using var g = TestTensors.Upload(c.Backend, gs[r]);
            return (y, TestTensors.Download(op.Backward(g)));
        });
        for (int r = 0; r < tp; r++)
        {
            Numerics.AssertClose(results[r].Forward, HostArrays.ConcatRows(xs), Tol, $"rank {r} forward");
            Numerics.AssertClose(results[r].Backward, HostArrays.Rows(Sum(gs), Cols, r, tp), Tol, $"rank {r} backward");
        }
        AssertLogged(results, CommunicationPhase.Forward, CollectiveKind.AllGather, tp, Rows * Cols);
        AssertLogged(results, CommunicationPhase.Backward, CollectiveKind.ReduceScatter, tp, Rows * Cols);
    }

    [Theory]
    [MemberData(nameof(Degrees))]
    public void ReduceScatterToSequenceParallelReducesTokensForwardAndGathersBackward(int tp)
    {
        var (xs, gs) = PerRank(tp, Rows * Cols, Rows / tp * Cols);
        var results = RunOp(tp, (c, r) =>
        {
            using var op = new ReduceScatterToSequenceParallelRegion(c, "op");
            using var x = TestTensors.Upload(c.Backend, xs[r]);
            var y = TestTensors.Download(op.Forward(x, Rows, Cols));
            using var g = TestTensors.Upload(c.Backend, gs[r]);
            return (y, TestTensors.Download(op.Backward(g)));
        });
        for (int r = 0; r < tp; r++)
        {
            Numerics.AssertClose(results[r].Forward, HostArrays.Rows(Sum(xs), Cols, r, tp), Tol, $"rank {r} forward");
            Numerics.AssertClose(results[r].Backward, HostArrays.ConcatRows(gs), Tol, $"rank {r} backward");
        }
        AssertLogged(results, CommunicationPhase.Forward, CollectiveKind.ReduceScatter, tp, Rows * Cols);
        AssertLogged(results, CommunicationPhase.Backward, CollectiveKind.AllGather, tp, Rows * Cols);
    }

    private sealed record OpResult(double[] Forward, double[] Backward, CommunicationLog Log);

    private static OpResult[] RunOp(int tp, Func<ParallelContext, int, (double[] Forward, double[] Backward)> body) =>
        TestWorld.Cpu(DType.Float32).Collect(tp, ctx =>
        {
            var context = new ParallelContext(ctx.Backend, ctx.World);
            var (forward, backward) = body(context, ctx.Rank);
            return new OpResult(forward, backward, context.Log);
        });

    /// <summary>Fresh inputs and gradients for every rank.</summary>
    private static (double[][] Inputs, double[][] Grads) PerRank(int tp, int inputCount, int gradCount)
    {
        var rng = TestRandom.Create();
        return (Enumerable.Range(0, tp).Select(_ => Numerics.RandomArray(rng, inputCount)).ToArray(),
            Enumerable.Range(0, tp).Select(_ => Numerics.RandomArray(rng, gradCount)).ToArray());
    }

    private static double[] Sum(double[][] arrays) =>
        Enumerable.Range(0, arrays[0].Length).Select(i => arrays.Sum(a => a[i])).ToArray();

    /// <summary>One collective of the kind, of the full tensor's bytes, in the phase at TP &gt; 1; nothing at all at TP = 1.</summary>
    private static void AssertLogged(OpResult[] results, CommunicationPhase phase, CollectiveKind kind, int tp, long fullCount)
    {
        foreach (var result in results)
        {
            var summary = result.Log.Summarize(phase, "op");
            if (tp == 1)
            {
                Assert.All(Enum.GetValues<CommunicationPhase>(), p => Assert.Equal(0, result.Log.Summarize(p).TotalCount));
                continue;
            }
            Assert.Equal(new CollectiveTally(1, fullCount * sizeof(float)), summary[kind]);
            Assert.Equal(1, summary.TotalCount);
        }
    }
}
