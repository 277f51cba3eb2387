namespace ModelParallel.Training.Pipeline;

/// <summary>
/// Makes the compute actions (F, B, I, W) of a schedule, per rank, in execution order; communication is added by
/// <see cref="PipelineCommunication.Insert"/>. Rank r runs stage r for one stage per rank, and stages r, r + p, ...,
/// r + (v - 1) p (its chunks 0 to v - 1) for the interleaved schedule.
/// <list type="bullet">
/// <item>GPipe: F(0) ... F(m - 1), then B(0) ... B(m - 1): backwards in forward micro-batch order, as torch's
/// ScheduleGPipe (the bubble is the same in either order; m micro-batches in flight at the peak).</item>
/// <item>1F1B: w = min(p - r - 1, m) warm-up forwards, then m - w pairs F(w + k), B(k), then w cool-down backwards.
/// Any m &gt;= 1 is accepted: with m &lt; p the warm-up is just shorter (every rank at most min(p, m) in flight).</item>
/// <item>Interleaved 1F1B (Megatron-LM's forward_backward_pipelining_with_interleaving): the k-th forward of a rank
/// runs chunk (k mod pv) / p on micro-batch (k / pv) p + k mod p, i.e. groups of p micro-batches go through chunk 0,
/// then chunk 1, ...; the k-th backward runs the chunks in reverse. Warm-up (p - r - 1) 2 + (v - 1) p forwards,
/// capped at m v, then 1F1B, then the remaining backwards. Needs v &gt;= 2 and m a multiple of p (Megatron's rule).</item>
/// <item>ZB-H1 (Qi et al. 2023, "Zero Bubble Pipeline Parallelism"): 1F1B's order with each B split into I
/// (input gradient, on the critical path) and W (weight gradient, deferred). Rank r holds back its first r W's:
/// in the steady and cool-down phases the k-th I is followed by a W only once k &gt;= r, and the held-back W's run
/// last, filling the cool-down bubble. At most p micro-batches (min(p, m)) are in flight on every rank, as in 1F1B,
/// counting a micro-batch until its W. Any m &gt;= 1.</item>
/// </list>
/// </summary>
public static class ScheduleGenerator
{
    /// <summary>
    /// The compute-only schedule of <paramref name="kind"/> on <paramref name="ranks"/> ranks (p),
    /// <paramref name="microBatches"/> micro-batches (m) and <paramref name="virtualStages"/> chunks per rank (v).
    /// Throws <see cref="ArgumentException"/> naming the value and the rule: p &gt;= 1; m &gt;= 1; v == 1 except for
    /// interleaved-1f1b, which needs v &gt;= 2 and m a multiple of p.
    /// </summary>
    public static PipelineSchedule Create(ScheduleKind kind, int ranks, int microBatches, int virtualStages = 1)
    {
        Check(kind, ranks, microBatches, virtualStages);
        var actions = new IReadOnlyList<PipelineAction>[ranks];
        for (int rank = 0; rank < ranks; rank++)
        {
            actions[rank] = kind switch
            {
                ScheduleKind.GPipe => GPipe(rank, microBatches),
                ScheduleKind.OneFOneB => OneFOneB(rank, ranks, microBatches, splitBackward: false),
                ScheduleKind.ZeroBubbleH1 => OneFOneB(rank, ranks, microBatches, splitBackward: true),
                ScheduleKind.Interleaved1F1B => Interleaved(rank, ranks, microBatches, virtualStages),
                _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown schedule kind"),
            };
        }
        return new PipelineSchedule(kind.Name(), ranks, virtualStages, microBatches, actions);
    }

    private static void Check(ScheduleKind kind, int ranks, int microBatches, int virtualStages)
    {
        string name = kind.Name();
        if (ranks < 1)
        {
            throw new ArgumentException($"{name}: ranks {ranks}: must be at least 1");
        }
        if (microBatches < 1)
        {
            throw new ArgumentException($"{name}: micro-batches {microBatches}: must be at least 1");
        }
        if (kind == ScheduleKind.Interleaved1F1B)
        {
            if (virtualStages < 2)
            {
                throw new ArgumentException(
                    $"{name}: virtual stages {virtualStages}: must be at least 2 (with 1 it is plain 1f1b)");
            }
            if (microBatches % ranks != 0)
            {
                throw new ArgumentException(
                    $"{name}: micro-batches {microBatches}: must be a multiple of ranks {ranks} (Megatron's rule)");
            }
        }
        else if (virtualStages != 1)
        {
            throw new ArgumentException(
                $"{name}: virtual stages {virtualStages}: must be 1 (one stage per rank; interleaved-1f1b takes more)");
        }
    }

    private static List<PipelineAction> GPipe(int rank, int m)
    {
        var list = new List<PipelineAction>(2 * m);
        for (int mb = 0; mb < m; mb++)
        {
            list.Add(new(ActionKind.Forward, rank, mb));
        }
        for (int mb = 0; mb < m; mb++)
        {
            list.Add(new(ActionKind.Backward, rank, mb));
        }
        return list;
    }

    private static List<PipelineAction> OneFOneB(int rank, int p, int m, bool splitBackward)
    {
        var list = new List<PipelineAction>(3 * m);
        int warmup = Math.Min(p - rank - 1, m);
        int heldBackW = splitBackward ? rank : 0;
        int nextW = 0;
        for (int mb = 0; mb < warmup; mb++)
        {
            list.Add(new(ActionKind.Forward, rank, mb));
        }
        for (int k = 0; k < m; k++)
        {
            if (k < m - warmup)
            {
                list.Add(new(ActionKind.Forward, rank, warmup + k));
            }
            if (!splitBackward)
            {
                list.Add(new(ActionKind.Backward, rank, k));
                continue;
            }
            list.Add(new(ActionKind.BackwardInput, rank, k));
            if (k >= heldBackW)
            {
                list.Add(new(ActionKind.BackwardWeight, rank, nextW++));
            }
        }
        while (splitBackward && nextW < m)
        {
            list.Add(new(ActionKind.BackwardWeight, rank, nextW++));
        }
        return list;
    }

    private static List<PipelineAction> Interleaved(int rank, int p, int m, int v)
    {
        int total = m * v;
        int warmup = Math.Min((p - rank - 1) * 2 + (v - 1) * p, total);
        var list = new List<PipelineAction>(2 * total);
        PipelineAction At(ActionKind kind, int k)
        {
            int inGroup = k % (p * v);
            int chunk = inGroup / p;
            if (kind != ActionKind.Forward)
            {
                chunk = v - 1 - chunk;
            }
            int microBatch = k / (p * v) * p + k % p;
            return new(kind, chunk * p + rank, microBatch);
        }
        for (int k = 0; k < warmup; k++)
        {
            list.Add(At(ActionKind.Forward, k));
        }
        for (int k = 0; k < total; k++)
        {
            if (k < total - warmup)
            {
                list.Add(At(ActionKind.Forward, warmup + k));
            }
            list.Add(At(ActionKind.Backward, k));
        }
        return list;
    }
}
