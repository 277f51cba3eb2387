namespace ModelParallel.Planner;

/// <summary>Memory of one GPU on one pipeline stage: the summary terms and the per-layer activation terms behind them.</summary>
public sealed record StageMemory(
    int Stage,
    int Layers,
    double Parameters,
    InFlight InFlight,
    IReadOnlyList<Term> LayerActivations,
    IReadOnlyList<Term> Terms)
{
    public double TotalBytes => Terms.Sum(t => t.Value);

    /// <summary>Bytes of one layer's activations for one microbatch.</summary>
    public double LayerActivationBytes => LayerActivations.Sum(t => t.Value);
}

/// <summary>
/// Memory per GPU: model states (<see cref="ModelStateMemory"/>) of the parameters the stage holds, the
/// activations of its layers times the microbatches in flight (<see cref="PipelineModel"/>,
/// <see cref="ActivationMemory"/>), the embedding on the first stage and the output layer on the last.
/// Transient buffers (activation gradients of the layer being differentiated, communication buffers) are
/// not counted; <see cref="TrainingSpec.MemoryReserveFraction"/> keeps room for them.
/// </summary>
public static class MemoryModel
{
    /// <summary>Bytes of a GPU the plan may use: capacity less the reserve.</summary>
    public static double Usable(ClusterSpec cluster, TrainingSpec training) =>
        cluster.GpuMemoryBytes * (1 - training.MemoryReserveFraction);

    /// <summary>
    /// The stages that can hold the most: with an even split only the first (most microbatches in flight,
    /// embedding) and the last (output layer) can; with an explicit split, every stage.
    /// </summary>
    public static IReadOnlyList<StageMemory> Stages(ModelSpec model, TrainingSpec training, ParallelLayout layout)
    {
        IEnumerable<int> stages = layout.LayerSplit is null ? new[] { 0, layout.Pp - 1 }.Distinct() : Enumerable.Range(0, layout.Pp);
        return [.. stages.Select(s => Stage(model, training, layout, s))];
    }

    public static StageMemory Stage(ModelSpec model, TrainingSpec training, ParallelLayout layout, int stage)
    {
        var (tp, pp, b) = (layout.Tp, layout.Pp, layout.MicroBatch);
        var m = layout.Microbatches(training);
        var layers = layout.LayersOnStage(model, stage);
        var psi = Parameters.Stage(model, tp, pp, stage, layers);
        var perLayer = ActivationMemory.Layer(model, training, tp, b);
        var perLayerBytes = perLayer.Sum(t => t.Value);
        var inFlight = PipelineModel.Held(pp, layout.VirtualStages, m, stage, layers);

        var terms = new List<Term>(ModelStateMemory.Terms(psi, layout.Dp, training))
        {
            Term.Bytes("activations", $"{inFlight.Formula} x {Units.Bytes(perLayerBytes)} per layer",
                inFlight.LayerActivations * perLayerBytes),
        };
        if (training.Recompute == Recompute.Full)
        {
            var working = ActivationMemory.LayerWithoutRecompute(model, training, tp, b).Sum(t => t.Value);
            terms.Add(Term.Bytes("recomputation working set", "one layer's activations without recomputation", working));
        }
        if (stage == 0)
        {
            var embedding = ActivationMemory.Embedding(model, training, tp, b);
            if (embedding.Count > 0)
            {
                var mb = PipelineModel.FirstStageMicrobatches(pp, m);
                var bytes = embedding.Sum(t => t.Value);
                terms.Add(Term.Bytes("embedding activations",
                    $"min(p, m) = {mb} microbatches x {string.Join(" + ", embedding.Select(t => t.Formula))}", mb * bytes));
            }
        }
        if (stage == pp - 1)
        {
            var output = ActivationMemory.Output(model, training, tp, b);
            terms.Add(Term.Bytes("output layer activations",
                $"one microbatch: {string.Join(" + ", output.Select(t => t.Formula))}", output.Sum(t => t.Value)));
        }
        return new StageMemory(stage, layers, psi, inFlight, perLayer, terms);
    }
}
