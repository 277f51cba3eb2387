namespace ModelParallel.Planner;

/// <summary>The link a process group's collectives run over, at the bandwidth collectives reach on it.</summary>
public sealed record Link(string Name, double Bandwidth, double Efficiency)
{
    /// <summary>Bytes per second a GPU sends: link bandwidth x communication efficiency.</summary>
    public double Effective => Bandwidth * Efficiency;

    public string Formula => $"({Units.Bandwidth(Bandwidth)} {Name} x {Units.Number(Efficiency)})";
}

/// <summary>Time of the data-parallel gradient (and ZeRO parameter) traffic of one step: all of it, and what is not hidden behind compute.</summary>
public sealed record DataParallelTime(IReadOnlyList<Term> Collectives, Term Exposed);

/// <summary>
/// Communication per step, with ring collectives over n ranks: an all-reduce of M bytes sends
/// 2(n-1)/n M per GPU, an all-gather or reduce-scatter (n-1)/n M. Process groups follow Megatron's order
/// (TP fastest, then DP, then PP): a TP group lies inside a node (NVLink); a DP group does when TP x DP
/// divides the GPUs per node, else it crosses the network; pipeline sends cross the network whenever
/// there is more than one node (the slowest stage boundary sets the pace).
/// </summary>
public static class CommunicationModel
{
    public static Link TensorLink(ClusterSpec c, TrainingSpec t) => Intra(c, t);

    public static Link DataLink(ClusterSpec c, TrainingSpec t, ParallelLayout l) =>
        c.GpusPerNode % ((long)l.Tp * l.Dp) == 0 ? Intra(c, t) : Inter(c, t);

    public static Link PipelineLink(ClusterSpec c, TrainingSpec t) => c.Nodes == 1 ? Intra(c, t) : Inter(c, t);

    /// <summary>
    /// TP collectives of one microbatch on a stage, all on the critical path. Without sequence parallelism a
    /// layer all-reduces its [s b, h] output twice forward (after attention, after the MLP) and its input
    /// gradient twice backward; with it, each all-reduce becomes an all-gather plus a reduce-scatter of the same
    /// total volume, and backward re-gathers the two sequence-sharded GEMM inputs, overlapped with the input-gradient GEMMs
    /// (not counted). Full recomputation repeats the forward collectives.
    /// </summary>
    public static Term TensorParallel(ModelSpec m, TrainingSpec t, ClusterSpec c, ParallelLayout l, int layers)
    {
        var tp = l.Tp;
        if (tp == 1)
        {
            return Term.Seconds("TP communication", "TP 1: none", 0);
        }
        var bytes = (double)t.ElementBytes * m.SequenceLength * l.MicroBatch * m.Hidden;
        var link = TensorLink(c, t);
        var perPass = t.SequenceParallel ? 4 : 2;
        var passes = t.Recompute == Recompute.Full ? 3 : 2;
        var collectives = perPass * passes;
        var share = t.SequenceParallel ? (tp - 1.0) / tp : 2.0 * (tp - 1) / tp;
        var kind = t.SequenceParallel ? "all-gathers and reduce-scatters" : "all-reduces";
        var shareText = t.SequenceParallel ? $"({tp}-1)/{tp}" : $"2({tp}-1)/{tp}";
        var countText = $"({perPass} forward + {perPass} backward" + (passes == 3 ? $" + {perPass} recomputed forward)" : ")");
        return Term.Seconds("TP communication",
            $"{layers} layers x {countText} {kind} x {shareText} x {Units.Bytes(bytes)} / {link.Formula}",
            layers * collectives * share * bytes / link.Effective);
    }

    /// <summary>
    /// Pipeline sends of one microbatch on a stage: the activation forward and its gradient backward at each of
    /// the v chunk boundaries, [s b, h] (divided by t under sequence parallelism), on the critical path.
    /// </summary>
    public static Term Pipeline(ModelSpec m, TrainingSpec t, ClusterSpec c, ParallelLayout l)
    {
        if (l.Pp == 1)
        {
            return Term.Seconds("PP communication", "PP 1: none", 0);
        }
        var bytes = (double)t.ElementBytes * m.SequenceLength * l.MicroBatch * m.Hidden / (t.SequenceParallel ? l.Tp : 1);
        var link = PipelineLink(c, t);
        var sends = 2 * l.VirtualStages;
        return Term.Seconds("PP communication",
            $"2 x {l.VirtualStages} chunk(s) = {sends} sends x {Units.Bytes(bytes)} / {link.Formula}",
            sends * bytes / link.Effective);
    }

    /// <summary>
    /// DP traffic of a stage holding <paramref name="psi"/> parameters per GPU. ZeRO 0: one gradient
    /// all-reduce per step; 1: a gradient reduce-scatter and a parameter all-gather after the optimizer step;
    /// 2: a gradient reduce-scatter after every microbatch (the gradients are kept sharded) and the
    /// all-gather; 3: every microbatch all-gathers the parameters forward and backward and reduce-scatters
    /// the gradients (1.5x the all-reduce volume, m times). Gradient reductions of a step overlap the
    /// last microbatch's backward, per-microbatch traffic overlaps that microbatch's compute, the
    /// parameter all-gather after the optimizer step is exposed.
    /// </summary>
    public static DataParallelTime DataParallel(TrainingSpec t, ClusterSpec c, ParallelLayout l, double psi,
        int microbatches, double computePerMicrobatch, double backwardPerMicrobatch)
    {
        var d = l.Dp;
        if (d == 1)
        {
            return new DataParallelTime([], Term.Seconds("DP exposed", "DP 1: none", 0));
        }
        var link = DataLink(c, t, l);
        var grads = t.GradientBytes * psi;
        var pars = t.ElementBytes * psi;
        var share = (d - 1.0) / d;
        var shareText = $"({d}-1)/{d}";
        Term Collective(string name, double count, string countText, double factor, string factorText, double bytes) =>
            Term.Seconds(name, $"{countText}{factorText}{shareText} x {Units.Bytes(bytes)} / {link.Formula}",
                count * factor * share * bytes / link.Effective);

        switch (t.ZeroStage)
        {
            case 0:
            {
                var ar = Collective("gradient all-reduce", 1, "", 2, "2", grads);
                return new([ar], Hidden(ar.Value, backwardPerMicrobatch, "the last microbatch's backward"));
            }
            case 1:
            {
                var rs = Collective("gradient reduce-scatter", 1, "", 1, "", grads);
                var ag = Collective("parameter all-gather", 1, "", 1, "", pars);
                var exposed = Hidden(rs.Value, backwardPerMicrobatch, "the last microbatch's backward");
                return new([rs, ag], Exposed(exposed, ag));
            }
            case 2:
            {
                var rs = Collective("gradient reduce-scatter per microbatch", microbatches, $"m {microbatches} x ", 1, "", grads);
                var ag = Collective("parameter all-gather", 1, "", 1, "", pars);
                var perMb = Hidden(rs.Value / microbatches, backwardPerMicrobatch, "each microbatch's backward");
                var exposed = Term.Seconds("DP exposed", $"m {microbatches} x {perMb.Formula} + all-gather {Units.Time(ag.Value)}",
                    microbatches * perMb.Value + ag.Value);
                return new([rs, ag], exposed);
            }
            default:
            {
                var all = Collective("parameter all-gathers (2) and gradient reduce-scatter per microbatch",
                    microbatches, $"m {microbatches} x ", 3, "3 x ", pars);
                var perMb = Hidden(all.Value / microbatches, computePerMicrobatch, "each microbatch's compute");
                return new([all], Term.Seconds("DP exposed", $"m {microbatches} x {perMb.Formula}", microbatches * perMb.Value));
            }
        }
    }

    private static Term Hidden(double seconds, double window, string behind) =>
        Term.Seconds("DP exposed", $"max(0, {Units.Time(seconds)} - {Units.Time(window)} of {behind})", Math.Max(0, seconds - window));

    private static Term Exposed(Term hidden, Term after) =>
        Term.Seconds("DP exposed", $"{hidden.Formula} + all-gather {Units.Time(after.Value)}", hidden.Value + after.Value);

    private static Link Intra(ClusterSpec c, TrainingSpec t) => new("NVLink", c.IntraNodeBandwidth, t.CommunicationEfficiency);

    private static Link Inter(ClusterSpec c, TrainingSpec t) => new("network", c.InterNodeBandwidth, t.CommunicationEfficiency);
}
