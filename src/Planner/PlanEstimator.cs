namespace ModelParallel.Planner;

/// <summary>
/// Evaluates one layout. A microbatch on a stage takes its compute plus its TP and PP communication; the
/// slowest stage sets the pace, so a step takes m of those, plus the bubble of (p-1)/v of them
/// (1F1B: (p-1)/m of the ideal time; interleaved: (p-1)/(v m)), plus the data-parallel traffic that is
/// not hidden. MFU = model FLOPs of the step / (step time x GPUs x peak).
/// </summary>
public static class PlanEstimator
{
    public static Plan Evaluate(PlannerInputs inputs, ParallelLayout layout)
    {
        inputs.Validate();
        var (model, cluster, training) = inputs;
        layout.Validate(model, cluster, training);

        var m = layout.Microbatches(training);
        var stages = MemoryModel.Stages(model, training, layout);
        var perStage = stages.Select(s => Microbatch(inputs, layout, s.Stage)).ToList();
        var slowest = perStage.MaxBy(x => x.Seconds)!;

        var dp = stages
            .Select((s, i) => CommunicationModel.DataParallel(training, cluster, layout, s.Parameters, m,
                perStage[i].Compute.Value, perStage[i].Compute.Value * ComputeModel.BackwardShare(model, training)))
            .MaxBy(x => x.Exposed.Value)!;

        var bubble = PipelineModel.BubbleFraction(layout.Pp, layout.VirtualStages, m);
        var step = new StepTime(
            PerStep("compute", m, slowest.Compute),
            PerStep("TP communication", m, slowest.Tensor),
            PerStep("PP communication", m, slowest.Pipeline),
            Term.Seconds("pipeline bubble",
                $"(p-1)/v = {layout.Pp - 1}/{layout.VirtualStages} x {Units.Time(slowest.Seconds)} (one microbatch on stage {slowest.Stage})",
                (layout.Pp - 1.0) / layout.VirtualStages * slowest.Seconds),
            dp.Exposed);

        var tokens = (double)training.GlobalBatch * model.SequenceLength;
        var modelFlops = tokens * ComputeModel.ModelFlopsPerToken(model);
        var seconds = step.Seconds;
        return new Plan(layout, m, stages, MemoryModel.Usable(cluster, training), slowest.Stage,
            slowest.Compute, slowest.Tensor, slowest.Pipeline, dp, bubble, step,
            modelFlops, modelFlops / (seconds * cluster.TotalGpus * cluster.PeakFlops), tokens / seconds);
    }

    private static StageTime Microbatch(PlannerInputs inputs, ParallelLayout layout, int stage)
    {
        var (model, cluster, training) = inputs;
        return new StageTime(stage,
            ComputeModel.Microbatch(model, training, cluster, layout, stage),
            CommunicationModel.TensorParallel(model, training, cluster, layout, layout.LayersOnStage(model, stage)),
            CommunicationModel.Pipeline(model, training, cluster, layout));
    }

    private static Term PerStep(string name, int m, Term perMicrobatch) =>
        Term.Seconds(name, $"m {m} x {Units.Time(perMicrobatch.Value)}", m * perMicrobatch.Value);

    private sealed record StageTime(int Stage, Term Compute, Term Tensor, Term Pipeline)
    {
        public double Seconds => Compute.Value + Tensor.Value + Pipeline.Value;
    }
}
