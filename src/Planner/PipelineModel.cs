namespace ModelParallel.Planner;

/// <summary>How many microbatches' activations a stage holds at its peak, and how a layer-count is written.</summary>
public sealed record InFlight(double Microbatches, double LayersPerMicrobatch, string Formula)
{
    /// <summary>Layer activations held at once: microbatches (or chunks) in flight x layers each.</summary>
    public double LayerActivations => Microbatches * LayersPerMicrobatch;
}

/// <summary>
/// The pipeline schedules: 1F1B (Narayanan et al. 2021, PipeDream-Flush) and Megatron's interleaved 1F1B
/// with v model chunks per stage. With p stages and m microbatches, 1F1B idles (p-1)/m of the ideal time
/// and stage r holds min(p - r, m) microbatches in flight; the interleaved schedule idles (p-1)/(v m) and
/// stage r holds 2(p-1-r) + (v-1)p + 1 chunks of L/(p v) layers in flight (Megatron's warm-up count plus
/// one), which for the first stage is L(1 + (p-1)/(p v)) layers (Korthikanti et al. 2022, section 4.2.3).
/// </summary>
public static class PipelineModel
{
    /// <summary>Idle fraction of the ideal pipeline time: (p-1)/(v m).</summary>
    public static double BubbleFraction(int pp, int virtualStages, int microbatches) =>
        (pp - 1) / ((double)virtualStages * microbatches);

    /// <summary>Activations stage <paramref name="stage"/> holds at its peak.</summary>
    public static InFlight Held(int pp, int virtualStages, int microbatches, int stage, int layersOnStage)
    {
        if (virtualStages == 1)
        {
            var mb = Math.Min(pp - stage, microbatches);
            return new InFlight(mb, layersOnStage, $"min(p - r, m) = min({pp} - {stage}, {microbatches}) = {mb} microbatches x {layersOnStage} layers");
        }
        var chunks = Math.Min(2 * (pp - 1 - stage) + (virtualStages - 1) * pp + 1, microbatches * virtualStages);
        var perChunk = layersOnStage / virtualStages;
        return new InFlight(chunks, perChunk,
            $"min(2(p-1-r) + (v-1)p + 1, m v) = min(2({pp}-1-{stage}) + ({virtualStages}-1){pp} + 1, {microbatches}x{virtualStages}) = {chunks} chunks x {perChunk} layers");
    }

    /// <summary>Microbatches whose embedding output the first stage holds: min(p, m).</summary>
    public static int FirstStageMicrobatches(int pp, int microbatches) => Math.Min(pp, microbatches);
}
