namespace ModelParallel.Planner;

/// <summary>Degrees the search must keep (null: search all valid values). A layer split fixes PP to its length.</summary>
public sealed record SearchConstraints(
    int? Tp = null,
    int? Pp = null,
    int? Dp = null,
    int? MicroBatch = null,
    int? VirtualStages = null,
    IReadOnlyList<int>? LayerSplit = null)
{
    public static SearchConstraints None { get; } = new();
}
