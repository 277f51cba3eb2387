using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelParallel.Planner;

/// <summary>A search as JSON: the inputs, the leading plans (<see cref="SearchResult.Leaders"/>) with every term, and, when nothing fits, why.</summary>
public sealed record PlanReport(PlannerInputs Inputs, int Evaluated, int Fitting, IReadOnlyList<Plan> Plans, Plan? Closest, string? WhyNothingFits)
{
    public static PlanReport From(SearchResult result, int top) =>
        new(result.Inputs, result.Evaluated, result.Plans.Count, result.Leaders(top), result.Closest, result.WhyNothingFits());
}

/// <summary>JSON of <see cref="PlanReport"/> and <see cref="ZeroTable"/> (System.Text.Json, source-generated, camelCase, enums as strings).</summary>
public static class PlanJson
{
    /// <summary>The generated context with formulas kept readable ("a + b", not "a \u002B b").</summary>
    private static readonly PlanJsonContext Context =
        new(new JsonSerializerOptions(PlanJsonContext.Default.Options) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    public static string Serialize(PlanReport report) => JsonSerializer.Serialize(report, Context.PlanReport);

    public static string Serialize(ZeroTable table) => JsonSerializer.Serialize(table, Context.ZeroTable);
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true)]
[JsonSerializable(typeof(PlanReport))]
[JsonSerializable(typeof(ZeroTable))]
internal sealed partial class PlanJsonContext : JsonSerializerContext;
