namespace ModelParallel.Planner;

/// <summary>
/// What <see cref="Search"/> found: the layouts that fit, fastest first; when none fits, the one that came
/// closest, whose terms say what is over and by how much.
/// </summary>
public sealed record SearchResult(PlannerInputs Inputs, IReadOnlyList<Plan> Plans, int Evaluated, Plan? Closest)
{
    public Plan? Best => Plans.Count > 0 ? Plans[0] : null;

    /// <summary>
    /// The plans to show: the fastest of each (TP, PP, DP) choice, best first, so that the list compares
    /// degrees rather than micro-batch and interleaving variants of one; when fewer than
    /// <paramref name="top"/> choices fit, the next-fastest variants fill the list.
    /// </summary>
    public IReadOnlyList<Plan> Leaders(int top)
    {
        var chosen = new HashSet<Plan>(Plans.DistinctBy(p => (p.Layout.Tp, p.Layout.Pp, p.Layout.Dp)).Take(top), ReferenceEqualityComparer.Instance);
        chosen.UnionWith(Plans.Where(p => !chosen.Contains(p)).Take(top - chosen.Count).ToList());
        return [.. Plans.Where(chosen.Contains)];
    }

    /// <summary>Why nothing fits, from the closest layout's terms; null when something fits.</summary>
    public string? WhyNothingFits()
    {
        if (Closest is null)
        {
            return null;
        }
        var stage = Closest.Fullest;
        var over = Closest.PeakBytes - Closest.UsableBytes;
        var cluster = Inputs.Cluster;
        var lines = new List<string>
        {
            $"No layout of {Inputs.Model.Name} fits on {cluster.TotalGpus} GPUs with {Units.Bytes(Closest.UsableBytes)} usable each "
            + $"({Units.Bytes(cluster.GpuMemoryBytes)} less the {Units.Percent(Inputs.Training.MemoryReserveFraction)} reserve).",
            $"Of the {Evaluated} valid layout{(Evaluated == 1 ? "" : "s")} the closest is {Closest.Layout}: stage {stage.Stage} needs {Units.Bytes(Closest.PeakBytes)}, "
            + $"over by {Units.Bytes(over)}:",
        };
        lines.AddRange(stage.Terms.OrderByDescending(t => t.Value)
            .Select(t => $"  {t.Name,-26} {t.FormattedValue,10}  {Units.Percent(t.Value / Closest.PeakBytes)} of the total ({t.Formula})"));
        var largest = stage.Terms.MaxBy(t => t.Value)!;
        lines.Add(largest.Value > over
            ? $"The largest term, {largest.Name} ({largest.FormattedValue}), would have to shrink by {Units.Bytes(over)} ({Units.Percent(over / largest.Value)} of it)."
            : $"Even without its largest term, {largest.Name} ({largest.FormattedValue}), the stage would be over by {Units.Bytes(over - largest.Value)}.");
        lines.AddRange(Alternatives());
        return string.Join(Environment.NewLine, lines);
    }

    /// <summary>What the closest layout would need with each memory saver not yet in use.</summary>
    private IEnumerable<string> Alternatives()
    {
        var t = Inputs.Training;
        var options = new List<(string Name, TrainingSpec Training)>();
        if (Closest!.Layout.Dp > 1)
        {
            options.AddRange(Enumerable.Range(t.ZeroStage + 1, 3 - t.ZeroStage).Select(stage => ($"ZeRO stage {stage}", t with { ZeroStage = stage })));
        }
        if (t.Recompute != Recompute.Full)
        {
            options.Add(("full recomputation", t with { Recompute = Recompute.Full }));
        }
        if (!t.SequenceParallel && Closest.Layout.Tp > 1)
        {
            options.Add(("sequence parallelism", t with { SequenceParallel = true }));
        }
        foreach (var (name, training) in options)
        {
            var plan = PlanEstimator.Evaluate(Inputs with { Training = training }, Closest!.Layout);
            yield return $"With {name} the same layout would need {Units.Bytes(plan.PeakBytes)}"
                + (plan.Fits ? " and fit." : $", still over by {Units.Bytes(plan.PeakBytes - plan.UsableBytes)}.");
        }
    }
}
