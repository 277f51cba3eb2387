namespace ModelParallel.Planner;

/// <summary>
/// Bytes per GPU of parameters, gradients and optimizer states (Rajbhandari et al. 2020, ZeRO, section 5):
/// with psi parameters on a GPU, mixed-precision Adam holds 2 psi + 2 psi + 12 psi bytes; ZeRO stage 1
/// divides the optimizer part by the data-parallel degree, stage 2 the gradients too, stage 3 the
/// parameters too.
/// </summary>
public static class ModelStateMemory
{
    /// <summary>Parameters, gradients and optimizer states of <paramref name="psi"/> parameters on one GPU.</summary>
    public static IReadOnlyList<Term> Terms(double psi, int dp, TrainingSpec training)
    {
        if (dp <= 0)
        {
            throw new ArgumentException($"DP must be positive (got {dp})");
        }
        var stage = training.ZeroStage;
        return
        [
            Part("parameters", training.ElementBytes, psi, dp, sharded: stage >= 3),
            Part("gradients", training.GradientBytes, psi, dp, sharded: stage >= 2),
            Part("optimizer states", training.OptimizerBytes, psi, dp, sharded: stage >= 1),
        ];
    }

    /// <summary>Bytes per parameter summed over the three parts, as "2 + 2 + 12/64".</summary>
    public static string BytesPerParameter(int dp, TrainingSpec training)
    {
        var stage = training.ZeroStage;
        return string.Join(" + ",
            Share(training.ElementBytes, dp, stage >= 3),
            Share(training.GradientBytes, dp, stage >= 2),
            Share(training.OptimizerBytes, dp, stage >= 1));
    }

    private static Term Part(string name, int bytes, double psi, int dp, bool sharded) =>
        Term.Bytes(name, $"{bytes} B x {Units.Count(psi)}" + (sharded ? $" / DP {dp}" : ""),
            bytes * psi / (sharded ? dp : 1));

    private static string Share(int bytes, int dp, bool sharded) => sharded ? $"{bytes}/{dp}" : $"{bytes}";
}
