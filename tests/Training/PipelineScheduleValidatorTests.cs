using ModelParallel.Training.Pipeline;

namespace ModelParallel.Tests.Training;

/// <summary>Hand-made malformed schedules, one per rule of <see cref="ScheduleValidator"/>, with the message checked.</summary>
public sealed class PipelineScheduleValidatorTests
{
    private static PipelineAction F(int s, int mb) => new(ActionKind.Forward, s, mb);
    private static PipelineAction B(int s, int mb) => new(ActionKind.Backward, s, mb);
    private static PipelineAction I(int s, int mb) => new(ActionKind.BackwardInput, s, mb);
    private static PipelineAction W(int s, int mb) => new(ActionKind.BackwardWeight, s, mb);
    private static PipelineAction SendF(int s, int mb) => new(ActionKind.SendActivation, s, mb);
    private static PipelineAction RecvF(int s, int mb) => new(ActionKind.RecvActivation, s, mb);
    private static PipelineAction SendB(int s, int mb) => new(ActionKind.SendGradient, s, mb);
    private static PipelineAction RecvB(int s, int mb) => new(ActionKind.RecvGradient, s, mb);

    private static PipelineSchedule Make(int ranks, int m, params PipelineAction[][] actions) =>
        new("hand", ranks, 1, m, actions);

    /// <summary>Two ranks, one micro-batch, lowered correctly.</summary>
    private static PipelineAction[][] Good() =>
    [
        [F(0, 0), SendF(0, 0), RecvB(0, 0), B(0, 0)],
        [RecvF(1, 0), F(1, 0), B(1, 0), SendB(1, 0)],
    ];

    public static TheoryData<string, string> Broken() => new()
    {
        { "wrong rank", "rank 1, action F(s0,mb0) at position 0: stage 0 runs on rank 0 (stage mod 2), not rank 1" },
        { "stage out of range", "rank 0, action F(s2,mb0) at position 2: stage 2 out of range [0, 2)" },
        { "micro-batch out of range", "rank 0, action F(s0,mb1) at position 2: micro-batch 1 out of range [0, 1)" },
        { "forward twice", "rank 0, action F(s0,mb0) at position 1: appears twice (first at position 0)" },
        { "no forward", "rank 0, action F(s0,mb0): missing: each stage and micro-batch runs one F" },
        { "no backward", "rank 1, action B(s1,mb0): missing: each stage and micro-batch runs one B or one I and one W" },
        { "B and I", "action B(s0,mb0) at position 3: a B and a split backward (I/W)" },
        { "I without W", "rank 0, action W(s0,mb0): missing: an I needs its W" },
        { "backward before forward", "rank 0, action B(s0,mb0) at position 0: backward before its forward" },
        { "W before I", "rank 0, action W(s0,mb0) at position 1: W before its I" },
        { "forward before previous stage", "rank 0, action F(s1,mb0) at position 0: runs before F(s0,mb0) on the same rank" },
        { "backward before next stage", "rank 0, action B(s0,mb0) at position 2: runs before the backward of stage 1 on the same rank" },
        { "no receive", "rank 1, action F(s1,mb0) at position 0: no RECV_F(s1,mb0) before it: its input comes from rank 0" },
        { "receive after consumer", "rank 1, action F(s1,mb0) at position 0: no RECV_F(s1,mb0) before it" },
        { "no gradient receive", "rank 0, action B(s0,mb0) at position 2: no RECV_B(s0,mb0) before it: its output gradient comes from rank 1" },
        { "send before producer", "rank 0, action SEND_F(s0,mb0) at position 0: sends before the F that produces the activation" },
        { "gradient send before producer", "rank 1, action SEND_B(s1,mb0) at position 2: sends before the backward that produces the gradient" },
        { "unmatched send", "rank 0, action SEND_F(s0,mb0) at position 1: no matching RECV_F(s1,mb0) on rank 1" },
        { "unmatched receive", "rank 1, action RECV_F(s1,mb0) at position 0: no matching SEND_F(s0,mb0) on rank 0" },
        { "send from last stage", "rank 1, action SEND_F(s1,mb0) at position 4: the last stage sends no activation" },
        { "receive on one rank", "rank 0, action RECV_F(s1,mb0) at position 1: stage 0 is on the same rank: nothing to receive" },
        { "duplicate send", "rank 0, action SEND_F(s0,mb0) at position 2: appears twice" },
        { "lists per rank", "1 action lists for 2 ranks" },
    };

    private static PipelineSchedule Case(string name)
    {
        var g = Good();
        return name switch
        {
            "wrong rank" => Make(2, 1, g[0], [F(0, 0), .. g[1]]),
            "stage out of range" => Make(2, 1, [F(0, 0), SendF(0, 0), F(2, 0)], g[1]),
            "micro-batch out of range" => Make(2, 1, [F(0, 0), SendF(0, 0), F(0, 1)], g[1]),
            "forward twice" => Make(2, 1, [F(0, 0), F(0, 0), .. g[0][1..]], g[1]),
            "no forward" => Make(1, 1, [B(0, 0)]),
            "no backward" => Make(2, 1, g[0], [RecvF(1, 0), F(1, 0)]),
            "B and I" => Make(1, 1, [F(0, 0), I(0, 0), W(0, 0), B(0, 0)]),
            "I without W" => Make(1, 1, [F(0, 0), I(0, 0)]),
            "backward before forward" => Make(1, 1, [B(0, 0), F(0, 0)]),
            "W before I" => Make(1, 1, [F(0, 0), W(0, 0), I(0, 0)]),
            "forward before previous stage" => new("hand", 1, 2, 1, [[F(1, 0), F(0, 0), B(1, 0), B(0, 0)]]),
            "backward before next stage" => new("hand", 1, 2, 1, [[F(0, 0), F(1, 0), B(0, 0), B(1, 0)]]),
            "no receive" => Make(2, 1, g[0], [F(1, 0), B(1, 0), SendB(1, 0), RecvF(1, 0)]),
            "receive after consumer" => Make(2, 1, g[0], [F(1, 0), RecvF(1, 0), B(1, 0), SendB(1, 0)]),
            "no gradient receive" => Make(2, 1, [F(0, 0), SendF(0, 0), B(0, 0)], [RecvF(1, 0), F(1, 0), B(1, 0)]),
            "send before producer" => Make(2, 1, [SendF(0, 0), F(0, 0), RecvB(0, 0), B(0, 0)], g[1]),
            "gradient send before producer" => Make(2, 1, g[0], [RecvF(1, 0), F(1, 0), SendB(1, 0), B(1, 0)]),
            "unmatched send" => Make(2, 1, g[0], [F(1, 0), B(1, 0), SendB(1, 0)]),
            "unmatched receive" => Make(2, 1, [F(0, 0), RecvB(0, 0), B(0, 0)], g[1]),
            "send from last stage" => Make(2, 1, g[0], [.. g[1], SendF(1, 0)]),
            "receive on one rank" => new("hand", 1, 2, 1, [[F(0, 0), RecvF(1, 0), F(1, 0), B(1, 0), B(0, 0)]]),
            "duplicate send" => Make(2, 1, [F(0, 0), SendF(0, 0), SendF(0, 0), RecvB(0, 0), B(0, 0)], g[1]),
            "lists per rank" => Make(2, 1, g[0]),
            _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no such case"),
        };
    }

    [Fact]
    public void WellFormedSchedules_Validate()
    {
        ScheduleValidator.Validate(Make(2, 1, Good()));
        ScheduleValidator.Validate(Make(2, 1, [F(0, 0), B(0, 0)], [F(1, 0), B(1, 0)]));
        ScheduleValidator.Validate(Make(1, 1, [F(0, 0), I(0, 0), W(0, 0)]));
    }

    [Theory]
    [MemberData(nameof(Broken))]
    public void BrokenSchedule_IsRefusedNamingRankActionAndRule(string name, string expected)
    {
        var ex = Assert.Throws<ArgumentException>(() => ScheduleValidator.Validate(Case(name)));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.StartsWith("pipeline schedule 'hand': ", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void ComputeOnlySchedule_LeavesCrossRankOrderToTheSimulator()
    {
        // Micro-batches in a different order on each rank: the validator checks only same-rank order for a
        // compute-only schedule; the simulator makes each action wait for its producer on the other rank.
        var s = Make(2, 2, [F(0, 0), F(0, 1), B(0, 1), B(0, 0)], [F(1, 1), F(1, 0), B(1, 1), B(1, 0)]);
        ScheduleValidator.Validate(s);
        var r = ScheduleSimulator.Simulate(s, new StageCosts(1, 1, 1, 1, 0));
        Assert.True(r.Makespan > 0);
    }
}
