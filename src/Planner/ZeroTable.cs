namespace ModelParallel.Planner;

/// <summary>Model-state memory per GPU under one ZeRO stage.</summary>
public sealed record ZeroStageMemory(int Stage, string BytesPerParameter, IReadOnlyList<Term> Terms)
{
    public double TotalBytes => Terms.Sum(t => t.Value);
}

/// <summary>
/// The ZeRO paper's Figure 1: parameters, gradients and optimizer states per GPU for every stage, for
/// <see cref="Parameters"/> parameters replicated over <see cref="Dp"/> data-parallel ranks
/// (7.5e9 and 64 give 120, 31.4, 16.6 and 1.9 GB).
/// </summary>
public sealed record ZeroTable(double Parameters, int Dp, Precision Precision, OptimizerKind Optimizer, bool Fp32Gradients,
    IReadOnlyList<ZeroStageMemory> Stages)
{
    public static ZeroTable Compute(double parameters, int dp, Precision precision = Precision.Bf16, OptimizerKind optimizer = OptimizerKind.Adam,
        bool fp32Gradients = false)
    {
        if (!(parameters > 0) || double.IsInfinity(parameters))
        {
            throw new ArgumentException($"parameters must be positive and finite (got {parameters})");
        }
        if (dp <= 0)
        {
            throw new ArgumentException($"DP must be positive (got {dp})");
        }
        var training = new TrainingSpec { GlobalBatch = 1, Precision = precision, Optimizer = optimizer, Fp32Gradients = fp32Gradients };
        return new ZeroTable(parameters, dp, precision, optimizer, fp32Gradients,
        [
            .. Enumerable.Range(0, 4).Select(stage =>
            {
                var t = training with { ZeroStage = stage };
                return new ZeroStageMemory(stage, ModelStateMemory.BytesPerParameter(dp, t), ModelStateMemory.Terms(parameters, dp, t));
            }),
        ]);
    }
}
