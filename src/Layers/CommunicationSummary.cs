using System.Globalization;

namespace ModelParallel.Layers;

/// <summary>The collectives of one phase (of one layer, or of everything logged), by kind.</summary>
public sealed class CommunicationSummary
{
    private readonly Entry[] _entries;

    internal CommunicationSummary(IEnumerable<Entry> entries) => _entries = entries.Where(e => e.Count > 0).ToArray();

    /// <summary>Count and total bytes of the collectives of <paramref name="kind"/>.</summary>
    public CollectiveTally this[CollectiveKind kind] =>
        _entries.Where(e => e.Kind == kind).Select(e => new CollectiveTally(e.Count, e.Bytes)).SingleOrDefault();

    /// <summary>Number of collectives of every kind.</summary>
    public int TotalCount => _entries.Sum(e => e.Count);

    /// <summary>Bytes of the collectives of every kind.</summary>
    public long TotalBytes => _entries.Sum(e => e.Bytes);

    /// <summary>"2 all-reduces of 16384 B" (or "3 all-gathers, 20480 B in total" when sizes differ), kinds joined by "; ", or "none".</summary>
    public override string ToString()
    {
        if (_entries.Length == 0)
        {
            return "none";
        }
        return string.Join("; ", _entries.Select(e =>
        {
            string count = e.Count.ToString(CultureInfo.InvariantCulture);
            string name = Describe(e.Kind) + (e.Count == 1 ? "" : "s");
            return e.MinBytes == e.MaxBytes
                ? $"{count} {name} of {e.MinBytes.ToString(CultureInfo.InvariantCulture)} B"
                : $"{count} {name}, {e.Bytes.ToString(CultureInfo.InvariantCulture)} B in total";
        }));
    }

    private static string Describe(CollectiveKind kind) => kind switch
    {
        CollectiveKind.AllReduce => "all-reduce",
        CollectiveKind.AllGather => "all-gather",
        CollectiveKind.ReduceScatter => "reduce-scatter",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown collective kind"),
    };

    /// <summary>The collectives of one kind: how many, their bytes in total, the smallest and the largest.</summary>
    internal readonly record struct Entry(CollectiveKind Kind, int Count, long Bytes, long MinBytes, long MaxBytes);
}
