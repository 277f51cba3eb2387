using System.Text.Json.Serialization;

namespace ModelParallel.Planner;

/// <summary>
/// Time of one optimizer step split into its parts (each a <see cref="Term"/> in seconds): m microbatches
/// of compute, TP and PP communication on the slowest stage, the pipeline bubble, and the data-parallel
/// traffic compute does not hide.
/// </summary>
public sealed record StepTime(Term Compute, Term TensorParallel, Term Pipeline, Term Bubble, Term DataParallel)
{
    [JsonIgnore]
    public IReadOnlyList<Term> Parts => [Compute, TensorParallel, Pipeline, Bubble, DataParallel];

    public double Seconds => Parts.Sum(p => p.Value);
}

/// <summary>A layout evaluated: memory per GPU on its fullest stage, time per step, and model FLOPs utilisation.</summary>
public sealed record Plan(
    ParallelLayout Layout,
    int Microbatches,
    IReadOnlyList<StageMemory> Stages,
    double UsableBytes,
    int SlowestStage,
    Term ComputePerMicrobatch,
    Term TensorParallelPerMicrobatch,
    Term PipelinePerMicrobatch,
    DataParallelTime DataParallel,
    double BubbleFraction,
    StepTime Step,
    double ModelFlopsPerStep,
    double Mfu,
    double TokensPerSecond)
{
    /// <summary>The stage whose GPUs need the most memory.</summary>
    [JsonIgnore]
    public StageMemory Fullest => Stages.MaxBy(s => s.TotalBytes)!;

    public double PeakBytes => Fullest.TotalBytes;

    public bool Fits => PeakBytes <= UsableBytes;
}
