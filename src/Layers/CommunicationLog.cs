namespace ModelParallel.Layers;

/// <summary>
/// Every collective the layers of one rank issued, in order, with the name of the layer that issued it
/// (a dotted parameter path such as "decoder.layers.0.mlp.linear_fc2"). Not thread-safe: one per rank.
/// </summary>
public sealed class CommunicationLog
{
    private readonly List<CollectiveRecord> _records = [];

    public IReadOnlyList<CollectiveRecord> Records => _records;

    public void Record(string source, CommunicationPhase phase, CollectiveKind kind, long bytes)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        _records.Add(new CollectiveRecord(source, phase, kind, bytes));
    }

    public void Clear() => _records.Clear();

    /// <summary>
    /// The collectives of <paramref name="phase"/> issued by the layer named <paramref name="source"/> or by
    /// any layer inside it (names that continue with "."); every layer when <paramref name="source"/> is null or
    /// empty (the name of a model at the top, whose layers have unprefixed names).
    /// </summary>
    public CommunicationSummary Summarize(CommunicationPhase phase, string? source = null) =>
        new(_records.Where(r => r.Phase == phase && (source is null || IsWithin(r.Source, source))));

    private static bool IsWithin(string recordSource, string layer) =>
        layer.Length == 0
        || recordSource == layer
        || (recordSource.StartsWith(layer, StringComparison.Ordinal) && recordSource[layer.Length] == '.');
}
