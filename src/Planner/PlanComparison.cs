namespace ModelParallel.Planner;

/// <summary>How much longer one part of a step takes in one plan than in another.</summary>
public sealed record StepDifference(string Part, double Seconds);

/// <summary>Why a plan ranks below another: the parts of the step that differ, largest first.</summary>
public static class PlanComparison
{
    /// <summary>Parts of <paramref name="other"/>'s step minus <paramref name="best"/>'s, largest magnitude first, zeros left out.</summary>
    public static IReadOnlyList<StepDifference> Differences(Plan best, Plan other) =>
    [
        .. best.Step.Parts.Zip(other.Step.Parts, (b, o) => new StepDifference(o.Name, o.Value - b.Value))
            .Where(d => Math.Abs(d.Seconds) > 1e-9 * best.Step.Seconds)
            .OrderByDescending(d => Math.Abs(d.Seconds)),
    ];

    /// <summary>"+1.20 s (+4.8%): TP communication +1.50 s, pipeline bubble -0.30 s; needs 61.3 GB vs 47.0 GB".</summary>
    public static string Explain(Plan best, Plan other)
    {
        var extra = other.Step.Seconds - best.Step.Seconds;
        var parts = Differences(best, other).Select(d => $"{d.Part} {Signed(d.Seconds)}");
        var memory = $"needs {Units.Bytes(other.PeakBytes)} vs {Units.Bytes(best.PeakBytes)}";
        return Math.Abs(extra) <= 1e-9 * best.Step.Seconds
            ? $"as fast; ranks lower on memory: {memory}"
            : $"{Signed(extra)} per step ({(extra >= 0 ? "+" : "")}{Units.Percent(extra / best.Step.Seconds)}): {string.Join(", ", parts)}; {memory}";
    }

    private static string Signed(double seconds) => (seconds >= 0 ? "+" : "-") + Units.Time(Math.Abs(seconds));
}
