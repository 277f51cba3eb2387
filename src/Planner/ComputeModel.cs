namespace ModelParallel.Planner;

/// <summary>
/// FLOPs and compute time. A matrix of W weights costs 2W FLOPs per token forward and 4W backward, so
/// training costs 6 x matmul parameters per token; attention scores add 12 s h per token and layer
/// (QK^T and attention over V, 4 s h forward, 8 s h backward; PaLM, Chowdhery et al. 2022, appendix B).
/// Recomputation adds forward work: full, one more forward of the layer (8 W + 16 s h); selective, the
/// attention core's forward (6 W + 16 s h). The embedding lookup costs no FLOPs; the output projection
/// costs 6 V h per token. Time = FLOPs / (peak x compute efficiency).
/// </summary>
public static class ComputeModel
{
    /// <summary>FLOPs per token the model needs (recomputation excluded): 6 (L W + V h) + 12 L s h.</summary>
    public static double ModelFlopsPerToken(ModelSpec m) =>
        m.Layers * (6 * Parameters.LayerMatmul(m) + AttentionFlops(m, 12)) + OutputFlopsPerToken(m);

    /// <summary>FLOPs per token of one layer as executed, recomputation included.</summary>
    public static double LayerFlopsPerToken(ModelSpec m, TrainingSpec training)
    {
        var (linear, attention) = Factors(training.Recompute);
        return linear * Parameters.LayerMatmul(m) + AttentionFlops(m, attention);
    }

    /// <summary>"6 W + 12 s h" for the training's recomputation.</summary>
    public static string LayerFlopsFormula(ModelSpec m, TrainingSpec training)
    {
        var (linear, attention) = Factors(training.Recompute);
        return $"{linear} x {Units.Count(Parameters.LayerMatmul(m))} + {attention} x {m.SequenceLength} x {m.Hidden}";
    }

    public static double OutputFlopsPerToken(ModelSpec m) => 6.0 * m.Vocab * m.Hidden;

    /// <summary>Share of a layer's executed FLOPs that runs in backward (recomputation included): 1 - (2 W + 4 s h) / executed.</summary>
    public static double BackwardShare(ModelSpec m, TrainingSpec training) =>
        1 - (2 * Parameters.LayerMatmul(m) + AttentionFlops(m, 4)) / LayerFlopsPerToken(m, training);

    /// <summary>Time one GPU of stage <paramref name="stage"/> computes one microbatch (all its virtual chunks).</summary>
    public static Term Microbatch(ModelSpec m, TrainingSpec training, ClusterSpec cluster, ParallelLayout layout, int stage)
    {
        var layers = layout.LayersOnStage(m, stage);
        var tokens = (double)layout.MicroBatch * m.SequenceLength;
        var last = stage == layout.Pp - 1;
        var flops = tokens * (layers * LayerFlopsPerToken(m, training) + (last ? OutputFlopsPerToken(m) : 0)) / layout.Tp;
        var rate = cluster.PeakFlops * training.ComputeEfficiency;
        var formula = $"{Units.Count(tokens)} tokens x ({layers} layers x ({LayerFlopsFormula(m, training)})"
            + (last ? $" + 6 x {m.Vocab} x {m.Hidden}" : "")
            + $") FLOP / TP {layout.Tp} / ({Units.FlopRate(cluster.PeakFlops)} x {Units.Number(training.ComputeEfficiency)})";
        return Term.Seconds($"compute, stage {stage}", formula, flops / rate);
    }

    private static double AttentionFlops(ModelSpec m, int factor) => (double)factor * m.SequenceLength * m.Hidden;

    private static (int Linear, int Attention) Factors(Recompute recompute) => recompute switch
    {
        Recompute.Full => (8, 16),
        Recompute.Selective => (6, 16),
        _ => (6, 12),
    };
}
