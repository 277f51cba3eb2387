namespace ModelParallel.Planner;

/// <summary>
/// Enumerates every valid layout: TP dividing the GPUs per node, the heads, the kv heads and the ffn width;
/// PP dividing the layers (or the explicit split's stage count); DP = GPUs / (TP PP); every micro batch
/// dividing global batch / DP; virtual stages dividing each stage's layers when PP &gt; 1 and the microbatches
/// are a multiple of PP. Evaluates each, keeps those that fit in memory, and ranks them by step time
/// (equivalently MFU), then by memory.
/// </summary>
public static class Search
{
    public static SearchResult Run(PlannerInputs inputs, SearchConstraints constraints)
    {
        inputs.Validate();
        var (model, cluster, training) = inputs;
        CheckConstraints(model, cluster, constraints);

        var fitting = new List<Plan>();
        var rejected = new SortedSet<string>(StringComparer.Ordinal);
        Plan? closest = null;
        var evaluated = 0;
        foreach (var layout in Candidates(model, cluster, training, constraints))
        {
            var problem = layout.Problem(model, cluster, training);
            if (problem is not null)
            {
                rejected.Add(problem);
                continue;
            }
            evaluated++;
            var plan = PlanEstimator.Evaluate(inputs, layout);
            if (plan.Fits)
            {
                fitting.Add(plan);
            }
            else if (closest is null || plan.PeakBytes < closest.PeakBytes)
            {
                closest = plan;
            }
        }
        if (evaluated == 0)
        {
            throw new ArgumentException(
                $"no valid layout of {model.Name} on {cluster.TotalGpus} GPUs: {string.Join("; ", rejected.Take(5))}");
        }
        var ranked = fitting
            .OrderBy(p => p.Step.Seconds)
            .ThenBy(p => p.PeakBytes)
            .ThenBy(p => p.Layout.Tp).ThenBy(p => p.Layout.Pp).ThenBy(p => p.Layout.MicroBatch).ThenBy(p => p.Layout.VirtualStages)
            .ToList();
        return new SearchResult(inputs, ranked, evaluated, ranked.Count > 0 ? null : closest);
    }

    private static void CheckConstraints(ModelSpec model, ClusterSpec cluster, SearchConstraints c)
    {
        if (c.LayerSplit is not null && c.Pp is not null && c.Pp != c.LayerSplit.Count)
        {
            throw new ArgumentException($"PP {c.Pp} disagrees with the layer split {string.Join(",", c.LayerSplit)} of {c.LayerSplit.Count} stages");
        }
        var problem =
            Positive(c.Tp, "TP") ?? Positive(c.Pp, "PP") ?? Positive(c.Dp, "DP") ?? Positive(c.MicroBatch, "micro batch")
            ?? Positive(c.VirtualStages, "virtual stages")
            ?? (c.Tp is { } tp ? ParallelLayout.TensorProblem(model, cluster, tp) : null)
            ?? (c.Pp is not null || c.LayerSplit is not null
                ? ParallelLayout.PipelineProblem(model, c.LayerSplit?.Count ?? c.Pp!.Value, c.LayerSplit)
                : null)
            ?? Divides(cluster, c);
        if (problem is not null)
        {
            throw new ArgumentException(problem);
        }
    }

    private static string? Divides(ClusterSpec cluster, SearchConstraints c)
    {
        var n = cluster.TotalGpus;
        var fixedDegrees = new (string Name, int? Value)[] { ("TP", c.Tp), ("PP", c.LayerSplit?.Count ?? c.Pp), ("DP", c.Dp) }
            .Where(x => x.Value is not null)
            .Select(x => (x.Name, Value: x.Value!.Value))
            .ToList();
        if (fixedDegrees.Count == 0)
        {
            return null;
        }
        var product = fixedDegrees.Aggregate(1L, (acc, x) => acc * x.Value);
        var named = string.Join(" x ", fixedDegrees.Select(x => $"{x.Name} {x.Value}"));
        return fixedDegrees.Count == 3 && product != n ? $"{named} = {product} GPUs, but the cluster has {n}"
            : n % product != 0 ? $"{named} = {product} does not divide the {n} GPUs"
            : null;
    }

    private static string? Positive(int? value, string name) =>
        value is <= 0 ? $"{name} must be positive (got {value})" : null;

    private static IEnumerable<ParallelLayout> Candidates(ModelSpec model, ClusterSpec cluster, TrainingSpec training, SearchConstraints c)
    {
        var n = cluster.TotalGpus;
        IEnumerable<int> tps = c.Tp is { } tp ? [tp] : Divisors(cluster.GpusPerNode).Where(t => ParallelLayout.TensorProblem(model, cluster, t) is null);
        IEnumerable<int> pps = c.LayerSplit is not null ? [c.LayerSplit.Count] : c.Pp is { } pp ? [pp] : Divisors(model.Layers);
        foreach (var t in tps)
        {
            foreach (var p in pps.Where(p => n % ((long)t * p) == 0))
            {
                var d = (int)(n / ((long)t * p));
                if (c.Dp is { } dp && dp != d)
                {
                    continue;
                }
                if (training.GlobalBatch % d != 0)
                {
                    yield return new ParallelLayout(t, p, d, c.MicroBatch ?? 1, 1, c.LayerSplit);
                    continue;
                }
                IEnumerable<int> micro = c.MicroBatch is { } fixedB ? [fixedB] : Divisors(training.GlobalBatch / d);
                foreach (var b in micro)
                {
                    IEnumerable<int> virtuals = c.VirtualStages is { } fixedV ? [fixedV]
                        : p > 1 && c.LayerSplit is null ? Divisors(model.Layers / p) : [1];
                    foreach (var v in virtuals)
                    {
                        yield return new ParallelLayout(t, p, d, b, v, c.LayerSplit);
                    }
                }
            }
        }
    }

    /// <summary>
    /// The divisors of <paramref name="n"/> in ascending order, found in pairs (k, n / k) by trial division up to
    /// sqrt(n): at most 46341 steps for any int, where trying every k up to n took minutes for a large prime.
    /// </summary>
    public static IReadOnlyList<int> Divisors(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(n);
        var small = new List<int>();
        var large = new List<int>();
        for (int k = 1; (long)k * k <= n; k++)
        {
            if (n % k == 0)
            {
                small.Add(k);
                if (k != n / k)
                {
                    large.Add(n / k);
                }
            }
        }
        large.Reverse();
        return [.. small, .. large];
    }
}
