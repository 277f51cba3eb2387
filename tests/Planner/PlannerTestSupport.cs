using ModelParallel.Cli;
using ModelParallel.Planner;

namespace ModelParallel.Tests.Planner;

/// <summary>Equality of doubles within a relative tolerance; NaN never equals anything.</summary>
internal sealed class RelativeComparer(double tolerance) : IEqualityComparer<double>
{
    public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance * Math.Max(Math.Abs(x), Math.Abs(y));

    public int GetHashCode(double obj) => 0;
}

/// <summary>Runs <c>mp</c> in-process, capturing what it writes.</summary>
internal static class MpCli
{
    public static (int ExitCode, string Output) Run(params string[] args)
    {
        Assert.Equal("plan", args[0]);
        using var output = new StringWriter();
        var rc = new PlanVerb().Run(args[1..], output);
        return (rc, output.ToString());
    }
}

/// <summary>Inputs shared by the planner tests.</summary>
internal static class Inputs
{
    public static ClusterSpec H100(int nodes) => ClusterPresets.Get("h100x8", nodes);

    public static PlannerInputs Llama70BOn16Nodes(TrainingSpec? training = null) =>
        new(ModelPresets.Get("llama2-70b"), H100(16), training ?? new TrainingSpec { GlobalBatch = 1024, ZeroStage = 1, SequenceParallel = true });

    /// <summary>A random value from <paramref name="values"/>: the sizes tests run at change from run to run.</summary>
    public static T Pick<T>(params T[] values) => values[Random.Shared.Next(values.Length)];
}
