using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelParallel.Planner;

/// <summary>A search as JSON: the inputs, the best plans with every term, and, when nothing fits, why.</summary>
public sealed record PlanReport(PlannerInputs Inputs, int Evaluated, int Fitting, IReadOnlyList<Plan> Plans, Plan? Closest, string? WhyNothingFits)
{
    public static PlanReport From(SearchResult result, int top) =>
        new(result.Inputs, result.Evaluated, result.Plans.Count, [.. result.Plans.Take(top)], result.Closest, result.WhyNothingFits());
}

/// <summary>JSON of <see cref="PlanReport"/> and <see cref="ZeroTable"/> (System.Text.Json, source-generated, camelCase, enums as strings).</summary>
public static class PlanJson
{
    public static string Serialize(PlanReport report) => JsonSerializer.Serialize(report, PlanJsonContext.Default.PlanReport);

    public static string Serialize(ZeroTable table) => JsonSerializer.Serialize(table, PlanJsonContext.Default.ZeroTable);
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true)]
[JsonSerializable(typeof(PlanReport))]
[JsonSerializable(typeof(ZeroTable))]
internal sealed partial class PlanJsonContext : JsonSerializerContext;
