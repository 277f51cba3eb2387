namespace ModelParallel.Training.Pipeline;

/// <summary>
/// What <see cref="ScheduleSimulator.Simulate"/> found: per rank, the timeline of its actions (the actions of one
/// communication group share the group's transfer interval and may overlap), its compute time (F, B, I, W) and
/// its idle time within the makespan (everything that is not compute: waiting and transfers).
/// <para>Bubble of a rank = its idle time / its compute time = (makespan - compute) / compute.
/// <see cref="BubbleFraction"/> is the largest over the ranks, <see cref="MeanBubbleFraction"/> the mean. With
/// equal stage costs and free transfers, every rank of GPipe and 1F1B has (p - 1)(F + B) idle against m (F + B)
/// compute: (p - 1) / m; interleaved 1F1B has (p - 1) / (v m).</para>
/// <para>In flight on a rank: (stage, micro-batch) pairs whose F has started and whose backward has not finished,
/// i.e. activations held. A split backward holds its activations until W (the weight gradient needs the layer
/// inputs), not just until I. <see cref="PeakInFlight"/> is the maximum per rank.</para>
/// </summary>
public sealed record SimulationResult(
    PipelineSchedule Schedule,
    StageCosts Costs,
    IReadOnlyList<IReadOnlyList<TimedAction>> Timelines,
    double Makespan,
    IReadOnlyList<double> ComputeTime,
    IReadOnlyList<double> IdleTime,
    IReadOnlyList<int> PeakInFlight)
{
    /// <summary>Idle time summed over the ranks.</summary>
    public double TotalIdleTime => IdleTime.Sum();

    /// <summary>Bubble of each rank: idle time / compute time.</summary>
    public IReadOnlyList<double> RankBubbles => [.. IdleTime.Select((idle, r) => idle / ComputeTime[r])];

    /// <summary>The largest bubble of any rank: idle time / compute time.</summary>
    public double BubbleFraction => RankBubbles.Max();

    /// <summary>The mean over ranks of idle time / compute time.</summary>
    public double MeanBubbleFraction => RankBubbles.Average();

    /// <summary>One line: name, sizes, makespan, bubble (max and mean), peak in flight.</summary>
    public override string ToString() =>
        $"{Schedule.Name} p={Schedule.Ranks} v={Schedule.VirtualStages} m={Schedule.MicroBatches}: " +
        $"makespan {Makespan:0.###}, bubble {BubbleFraction:0.####} (mean {MeanBubbleFraction:0.####}), " +
        $"peak in flight [{string.Join(", ", PeakInFlight)}]";
}
