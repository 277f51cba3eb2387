using ModelParallel.Training.Pipeline;

namespace ModelParallel.Tests.Training;

/// <summary>Simulator semantics (times, deadlock), the CLI names and the text timeline.</summary>
public sealed class PipelineScheduleSimulatorTests
{
    private static PipelineAction F(int s, int mb) => new(ActionKind.Forward, s, mb);
    private static PipelineAction B(int s, int mb) => new(ActionKind.Backward, s, mb);
    private static PipelineAction SendF(int s, int mb) => new(ActionKind.SendActivation, s, mb);
    private static PipelineAction RecvF(int s, int mb) => new(ActionKind.RecvActivation, s, mb);
    private static PipelineAction SendB(int s, int mb) => new(ActionKind.SendGradient, s, mb);
    private static PipelineAction RecvB(int s, int mb) => new(ActionKind.RecvGradient, s, mb);

    [Fact]
    public void TwoRanksEachReceivingBeforeSending_Deadlock()
    {
        // Rank 0 waits for stage 1's gradient before it sends stage 0's activations; rank 1 needs them first.
        // (In one group, RECV_B and SEND_F would be posted together and complete: the group is what saves it.)
        var s = new PipelineSchedule("hand", 2, 1, 2,
        [
            [F(0, 0), F(0, 1), RecvB(0, 0), B(0, 0), SendF(0, 0), SendF(0, 1), RecvB(0, 1), B(0, 1)],
            [RecvF(1, 0), F(1, 0), B(1, 0), SendB(1, 0), RecvF(1, 1), F(1, 1), B(1, 1), SendB(1, 1)],
        ]);
        ScheduleValidator.Validate(s);
        var ex = Assert.Throws<InvalidOperationException>(() => ScheduleSimulator.Simulate(s, new StageCosts(1, 1, 1, 1, 0)));
        Assert.Contains("pipeline schedule 'hand' deadlocks: ", ex.Message, StringComparison.Ordinal);
        Assert.Contains("rank 0 blocked at group [RECV_B(s0,mb0)]: RECV_B(s0,mb0) waiting for SEND_B(s1,mb0) on rank 1",
            ex.Message, StringComparison.Ordinal);
        Assert.Contains("rank 1 blocked at group [RECV_F(s1,mb0)]: RECV_F(s1,mb0) waiting for SEND_F(s0,mb0) on rank 0",
            ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheSameExchangeInOneGroup_Completes()
    {
        var s = new PipelineSchedule("hand", 2, 1, 1,
        [
            [F(0, 0), RecvB(0, 0), SendF(0, 0), B(0, 0)],
            [RecvF(1, 0), F(1, 0), B(1, 0), SendB(1, 0)],
        ]);
        Assert.Equal(4, ScheduleSimulator.Simulate(s, new StageCosts(1, 1, 1, 1, 0)).Makespan, 9);
    }

    [Fact]
    public void ComputeOnlyCrossRankCycle_Deadlocks()
    {
        // Rank 0 runs the backward of mb 0 (which needs rank 1's) before the forward of mb 1, rank 1 the forward of
        // mb 1 (which needs rank 0's) before the backward of mb 0.
        var s = new PipelineSchedule("hand", 2, 1, 2,
        [
            [F(0, 0), B(0, 0), F(0, 1), B(0, 1)],
            [F(1, 1), F(1, 0), B(1, 0), B(1, 1)],
        ]);
        var ex = Assert.Throws<InvalidOperationException>(() => ScheduleSimulator.Simulate(s, new StageCosts(1, 1, 1, 1, 0)));
        Assert.Contains("rank 0 blocked at B(s0,mb0) waiting for its input; rank 1 blocked at F(s1,mb1) waiting for its input",
            ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Transfers_TakeP2PTimeAtTheRendezvous()
    {
        var s = PipelineCommunication.Insert(ScheduleGenerator.Create(ScheduleKind.GPipe, 2, 1));
        var r = ScheduleSimulator.Simulate(s, new StageCosts(1, 2, 1, 1, 0.5));
        // F0 [0,1) send [1,1.5) F1 [1.5,2.5) B1 [2.5,4.5) send [4.5,5) B0 [5,7).
        Assert.Equal(7, r.Makespan, 9);
        Assert.Equal([3, 3], r.ComputeTime);
        Assert.Equal(4.0 / 3, r.BubbleFraction, 9);
        var recv = r.Timelines[1].Single(t => t.Action == RecvF(1, 0));
        Assert.Equal((1, 1.5), (recv.Start, recv.End));
        // Compute-only: the same times, P2P charged between ranks.
        var c = ScheduleSimulator.Simulate(ScheduleGenerator.Create(ScheduleKind.GPipe, 2, 1), new StageCosts(1, 2, 1, 1, 0.5));
        Assert.Equal(7, c.Makespan, 9);
    }

    /// <summary>
    /// Interleaved 1F1B lowered with communication: every rank waits on a neighbour busy in a backward unless the
    /// transfers go between steps (Megatron's batched send and receive); then it keeps (p - 1) / (v m) with free links.
    /// </summary>
    [Theory]
    [InlineData(2, 4, 2)]
    [InlineData(2, 8, 2)]
    [InlineData(8, 16, 2)]
    [InlineData(4, 8, 4)]
    public void InterleavedWithCommunication_KeepsItsBubble(int p, int m, int v)
    {
        var costs = new StageCosts(1, 2, 1, 1, 0);
        var compute = ScheduleGenerator.Create(ScheduleKind.Interleaved1F1B, p, m, v);
        var full = ScheduleSimulator.Simulate(PipelineCommunication.Insert(compute), costs);
        Assert.Equal(ScheduleSimulator.Simulate(compute, costs).Makespan, full.Makespan, 9);
        Assert.Equal((p - 1.0) / (v * m), full.BubbleFraction, 9);
    }

    [Fact]
    public void Costs_AreChecked()
    {
        var s = ScheduleGenerator.Create(ScheduleKind.OneFOneB, 2, 2);
        var ex = Assert.Throws<ArgumentException>(() => ScheduleSimulator.Simulate(s, new StageCosts(0, 1, 1, 1, 0)));
        Assert.Equal("stage cost Forward 0: must be finite and greater than 0", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => ScheduleSimulator.Simulate(s, new StageCosts(1, 1, 1, 1, -1)));
        Assert.Equal("stage cost P2P -1: must be finite and at least 0", ex.Message);
    }

    [Fact]
    public void InsertingTwice_IsRefused()
    {
        var full = PipelineCommunication.Insert(ScheduleGenerator.Create(ScheduleKind.OneFOneB, 2, 2));
        var ex = Assert.Throws<ArgumentException>(() => PipelineCommunication.Insert(full));
        Assert.Contains("already has communication", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Generator_ChecksRanksAndMicroBatchesFirst()
    {
        var ex = Assert.Throws<ArgumentException>(() => ScheduleGenerator.Create(ScheduleKind.Interleaved1F1B, 0, 3, 1));
        Assert.Equal("interleaved-1f1b: ranks 0: must be at least 1", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => ScheduleGenerator.Create(ScheduleKind.ZeroBubbleH1, 2, 0));
        Assert.Equal("zb-h1: micro-batches 0: must be at least 1", ex.Message);
    }

    [Theory]
    [InlineData("gpipe", ScheduleKind.GPipe)]
    [InlineData("1f1b", ScheduleKind.OneFOneB)]
    [InlineData("Interleaved-1F1B", ScheduleKind.Interleaved1F1B)]
    [InlineData("zb-h1", ScheduleKind.ZeroBubbleH1)]
    public void Kinds_ParseTheirCliNames(string name, ScheduleKind kind)
    {
        Assert.Equal(kind, ScheduleKinds.Parse(name));
        Assert.Equal(name.ToLowerInvariant(), kind.Name());
    }

    [Fact]
    public void UnknownKind_NamesTheKnownOnes()
    {
        var ex = Assert.Throws<ArgumentException>(() => ScheduleKinds.Parse("zb-v"));
        Assert.Equal("unknown pipeline schedule 'zb-v': expected one of gpipe, 1f1b, interleaved-1f1b, zb-h1", ex.Message);
    }

    [Fact]
    public void Timeline_HasOneLinePerRankAndTheBubbleLegend()
    {
        var r = ScheduleSimulator.Simulate(ScheduleGenerator.Create(ScheduleKind.OneFOneB, 2, 2), new StageCosts(1, 1, 1, 1, 0));
        string text = ScheduleText.Timeline(r, 12);
        string[] lines = text.TrimEnd('\n').Split('\n');
        Assert.Equal(4, lines.Length);
        Assert.StartsWith("1f1b p=2 v=1 m=2: makespan 6, bubble 0.5 (mean 0.5)", lines[0], StringComparison.Ordinal);
        // Two columns per time unit: rank 0 F0 F1 . B0 . B1, rank 1 . F0 B0 F1 B1 .
        Assert.Equal("rank 0 |F0F1..B0..B1|", lines[1]);
        Assert.Equal("rank 1 |..F0B0F1B1..|", lines[2]);
        Assert.StartsWith("bubble of a rank = idle time / compute time", lines[3], StringComparison.Ordinal);
    }
}
