using ModelParallel.Training.Pipeline;

namespace ModelParallel.Tests.Training;

/// <summary>
/// Every schedule kind over a grid of ranks p 1..8, micro-batches m (odd, prime, not divisible by p) and virtual
/// stages v 1..4 (torch.distributed.pipelining's test_schedule.py grid): either the generator refuses the combination
/// by exactly the documented rule, or the schedule validates with and without communication, runs every (stage,
/// micro-batch) once, simulates to the end, and has the bubble and in-flight peak of its closed form; lowered with
/// communication (free transfers, grouped rendezvous), it keeps exactly the compute-only makespan and bubble.
/// Costs: the zero-bubble paper's F = I = W = 1, B = 2, free transfers (the closed forms of GPipe and 1F1B hold for
/// any B when F, B are equal per stage; the 1/3 of ZB-H1 needs F = I = W).
/// </summary>
public sealed class PipelineScheduleGridTests
{
    private static readonly int[] MicroBatches = [1, 2, 3, 5, 7, 8, 13, 16, 33, 64];
    private static readonly StageCosts Costs = StageCosts.ZeroBubblePaper;

    public static TheoryData<ScheduleKind, int> Cases()
    {
        var data = new TheoryData<ScheduleKind, int>();
        foreach (var kind in ScheduleKinds.All)
        {
            for (int p = 1; p <= 8; p++)
            {
                data.Add(kind, p);
            }
        }
        return data;
    }

    /// <summary>The documented rule a combination breaks, as the message states it; null when it is accepted.</summary>
    private static (string Value, string Rule)? Rejection(ScheduleKind kind, int p, int m, int v) => kind switch
    {
        ScheduleKind.Interleaved1F1B when v < 2 => ($"virtual stages {v}", "must be at least 2 (with 1 it is plain 1f1b)"),
        ScheduleKind.Interleaved1F1B when m % p != 0 => ($"micro-batches {m}", $"must be a multiple of ranks {p}"),
        ScheduleKind.Interleaved1F1B => null,
        _ when v != 1 => ($"virtual stages {v}", "must be 1"),
        _ => null,
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Grid_RejectsByRuleOrValidatesSimulatesAndMeetsClosedForms(ScheduleKind kind, int p)
    {
        foreach (int m in MicroBatches)
        {
            for (int v = 1; v <= 4; v++)
            {
                string at = $"{kind.Name()} p={p} m={m} v={v}";
                var rejection = Rejection(kind, p, m, v);
                if (rejection is { } rule)
                {
                    var ex = Assert.Throws<ArgumentException>(() => ScheduleGenerator.Create(kind, p, m, v));
                    Assert.True(ex.Message.Contains(rule.Value, StringComparison.Ordinal)
                        && ex.Message.Contains(rule.Rule, StringComparison.Ordinal), $"{at}: {ex.Message}");
                    continue;
                }
                Check(kind, p, m, v, at);
            }
        }
    }

    private static void Check(ScheduleKind kind, int p, int m, int v, string at)
    {
        var compute = ScheduleGenerator.Create(kind, p, m, v);
        Assert.Equal((p, v, m), (compute.Ranks, compute.VirtualStages, compute.MicroBatches));
        Assert.All(compute.Actions, list => Assert.All(list, a => Assert.True(a.IsCompute, at)));
        ScheduleValidator.Validate(compute);
        AssertEachStageAndMicroBatchOnce(compute, kind == ScheduleKind.ZeroBubbleH1, at);

        var full = PipelineCommunication.Insert(compute);
        ScheduleValidator.Validate(full);
        int comms = full.Actions.Sum(l => l.Count(a => a.IsCommunication));
        // Per (stage boundary, micro-batch): a send and a receive each way; none on one rank.
        Assert.True(comms == (p == 1 ? 0 : 4 * (p * v - 1) * m), $"{at}: {comms} communication actions");
        Assert.Equal(compute.Actions.Select(l => l.ToArray()), full.Actions.Select(l => l.Where(a => a.IsCompute).ToArray()));

        var ideal = ScheduleSimulator.Simulate(compute, Costs);
        var lowered = ScheduleSimulator.Simulate(full, Costs);
        var slowLinks = ScheduleSimulator.Simulate(full, Costs with { P2P = 0.25 });
        // Free transfers: the lowered schedule keeps the compute-only timeline's makespan, so its bubble, exactly.
        Assert.True(Math.Abs(lowered.Makespan - ideal.Makespan) < 1e-9, $"{at}: {lowered.Makespan} vs {ideal.Makespan}");
        Assert.True(Math.Abs(lowered.BubbleFraction - ideal.BubbleFraction) < 1e-9,
            $"{at}: bubble {lowered.BubbleFraction} vs {ideal.BubbleFraction}");
        Assert.True(slowLinks.Makespan >= lowered.Makespan - 1e-9, at);
        AssertPairsInOrder(full, at);
        double perRank = (kind == ScheduleKind.ZeroBubbleH1 ? 3 : Costs.Forward + Costs.Backward) * m * v;
        Assert.All(ideal.ComputeTime, c => Assert.Equal(perRank, c, 9));

        double oneFOneB = (p - 1.0) / m;
        switch (kind)
        {
            case ScheduleKind.GPipe:
                Assert.True(Math.Abs(ideal.BubbleFraction - oneFOneB) < 1e-9, $"{at}: bubble {ideal.BubbleFraction}");
                Assert.All(ideal.PeakInFlight, n => Assert.Equal(m, n));
                break;
            case ScheduleKind.OneFOneB:
                Assert.True(Math.Abs(ideal.BubbleFraction - oneFOneB) < 1e-9, $"{at}: bubble {ideal.BubbleFraction}");
                Assert.Equal(Math.Min(p, m), ideal.PeakInFlight[0]);
                Assert.All(ideal.PeakInFlight, n => Assert.InRange(n, 1, Math.Min(p, m)));
                break;
            case ScheduleKind.Interleaved1F1B:
                double interleaved = (p - 1.0) / (v * m);
                Assert.True(Math.Abs(ideal.BubbleFraction - interleaved) < 1e-9, $"{at}: bubble {ideal.BubbleFraction}");
                Assert.True(Math.Abs(lowered.BubbleFraction - interleaved) < 1e-9, $"{at}: lowered bubble {lowered.BubbleFraction}");
                Assert.Equal(Math.Min(2 * (p - 1) + (v - 1) * p + 1, m * v), ideal.PeakInFlight[0]);
                break;
            case ScheduleKind.ZeroBubbleH1:
                // Qi et al.: (p - 1)(F + I - W) idle per rank against 1F1B's (p - 1)(F + B): a third when F = I = W
                // and m >= p. With m < p the warm-up is cut short and less W is left to fill it: between 1/3 and 2/3.
                double ratio = p == 1 ? 0 : ideal.BubbleFraction / oneFOneB;
                if (p == 1)
                {
                    Assert.Equal(0, ideal.BubbleFraction, 9);
                }
                else if (m >= p)
                {
                    Assert.True(Math.Abs(ratio - 1.0 / 3) < 1e-9, $"{at}: bubble {ideal.BubbleFraction}, ratio {ratio}");
                }
                else
                {
                    Assert.True(ratio > 1.0 / 3 - 1e-9 && ratio <= 2.0 / 3 + 1e-9, $"{at}: ratio {ratio}");
                }
                Assert.Equal(Math.Min(p, m), ideal.PeakInFlight[0]);
                Assert.All(ideal.PeakInFlight, n => Assert.InRange(n, 1, Math.Min(p, m)));
                break;
        }
    }

    /// <summary>
    /// Transfers between two ranks pair in the order they are posted (ICommunicator.BatchSendRecv): the sends from one
    /// rank to another name, in order, the same transfers as the other rank's receives from it.
    /// </summary>
    private static void AssertPairsInOrder(PipelineSchedule s, string at)
    {
        PipelineAction Peer(PipelineAction a) => a.Kind == ActionKind.SendActivation
            ? new(ActionKind.RecvActivation, a.Stage + 1, a.MicroBatch)
            : new(ActionKind.RecvGradient, a.Stage - 1, a.MicroBatch);
        for (int from = 0; from < s.Ranks; from++)
        {
            for (int to = 0; to < s.Ranks; to++)
            {
                var sends = s.Actions[from]
                    .Where(a => a.Kind is ActionKind.SendActivation or ActionKind.SendGradient)
                    .Select(Peer).Where(a => s.RankOfStage(a.Stage) == to).ToList();
                var recvs = s.Actions[to]
                    .Where(a => (a.Kind == ActionKind.RecvActivation && s.RankOfStage(a.Stage - 1) == from)
                        || (a.Kind == ActionKind.RecvGradient && s.RankOfStage(a.Stage + 1) == from))
                    .ToList();
                Assert.True(sends.SequenceEqual(recvs), $"{at}: rank {from} to rank {to}: sends and receives pair out of order");
            }
        }
    }

    private static void AssertEachStageAndMicroBatchOnce(PipelineSchedule s, bool split, string at)
    {
        var kinds = split
            ? new[] { ActionKind.Forward, ActionKind.BackwardInput, ActionKind.BackwardWeight }
            : new[] { ActionKind.Forward, ActionKind.Backward };
        var seen = s.Actions.SelectMany(l => l).GroupBy(a => a).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(kinds.Length * s.Stages * s.MicroBatches, seen.Count);
        for (int stage = 0; stage < s.Stages; stage++)
        {
            for (int mb = 0; mb < s.MicroBatches; mb++)
            {
                foreach (var kind in kinds)
                {
                    Assert.True(seen.GetValueOrDefault(new(kind, stage, mb)) == 1, $"{at}: {new PipelineAction(kind, stage, mb)}");
                }
            }
        }
    }
}
