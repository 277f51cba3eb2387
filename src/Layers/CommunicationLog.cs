namespace ModelParallel.Layers;

/// <summary>
/// Counts and bytes of the collectives the layers of one rank issued, by the name of the layer that issued them
/// (a dotted parameter path such as "decoder.layers.0.mlp.linear_fc2"), phase and kind. Bytes are those of the
/// full (unsharded) tensor: the buffer of an all-reduce, the output of an all-gather, the input of a
/// reduce-scatter (the sizes nccl-tests reports). Memory stays bounded by the number of layers however many
/// calls are recorded. Not thread-safe: one per rank.
/// </summary>
public sealed class CommunicationLog
{
    private readonly Dictionary<(string Source, CommunicationPhase Phase, CollectiveKind Kind), Totals> _totals = [];

    public void Record(string source, CommunicationPhase phase, CollectiveKind kind, long bytes)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (!_totals.TryGetValue((source, phase, kind), out var totals))
        {
            totals = new Totals();
            _totals.Add((source, phase, kind), totals);
        }
        totals.Add(bytes);
    }

    public void Clear() => _totals.Clear();

    /// <summary>
    /// The collectives of <paramref name="phase"/> issued by the layer named <paramref name="source"/> or by
    /// any layer inside it (names that continue with "."); every layer when <paramref name="source"/> is null or
    /// empty (the name of a model at the top, whose layers have unprefixed names).
    /// </summary>
    public CommunicationSummary Summarize(CommunicationPhase phase, string? source = null) =>
        new(Enum.GetValues<CollectiveKind>().Select(kind =>
        {
            var matching = _totals.Where(t => t.Key.Phase == phase && t.Key.Kind == kind && IsWithin(t.Key.Source, source))
                .Select(t => t.Value).ToArray();
            return new CommunicationSummary.Entry(kind, matching.Sum(t => t.Count), matching.Sum(t => t.Bytes),
                matching.Length == 0 ? 0 : matching.Min(t => t.MinBytes), matching.Length == 0 ? 0 : matching.Max(t => t.MaxBytes));
        }));

    private static bool IsWithin(string recordSource, string? layer) =>
        string.IsNullOrEmpty(layer)
        || recordSource == layer
        || (recordSource.StartsWith(layer, StringComparison.Ordinal) && recordSource[layer.Length] == '.');

    private sealed class Totals
    {
        public int Count { get; private set; }

        public long Bytes { get; private set; }

        public long MinBytes { get; private set; } = long.MaxValue;

        public long MaxBytes { get; private set; }

        public void Add(long bytes)
        {
            Count++;
            Bytes += bytes;
            MinBytes = Math.Min(MinBytes, bytes);
            MaxBytes = Math.Max(MaxBytes, bytes);
        }
    }
}
