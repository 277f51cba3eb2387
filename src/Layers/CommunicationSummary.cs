using System.Globalization;

namespace ModelParallel.Layers;

/// <summary>The collectives of one phase (of one layer, or of everything logged), by kind.</summary>
public sealed class CommunicationSummary
{
    private readonly IReadOnlyList<CollectiveRecord> _records;

    public CommunicationSummary(IEnumerable<CollectiveRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        _records = records.ToArray();
    }

    /// <summary>Count and total bytes of the collectives of <paramref name="kind"/>.</summary>
    public CollectiveTally this[CollectiveKind kind]
    {
        get
        {
            int count = 0;
            long bytes = 0;
            foreach (var r in _records)
            {
                if (r.Kind == kind)
                {
                    count++;
                    bytes += r.Bytes;
                }
            }
            return new CollectiveTally(count, bytes);
        }
    }

    /// <summary>Number of collectives of every kind.</summary>
    public int TotalCount => _records.Count;

    /// <summary>Bytes of the collectives of every kind.</summary>
    public long TotalBytes => _records.Sum(r => r.Bytes);

    /// <summary>"2 all-reduces of 16384 B", kinds joined by "; ", or "none".</summary>
    public override string ToString()
    {
        var parts = new List<string>();
        foreach (var kind in Enum.GetValues<CollectiveKind>())
        {
            var sizes = _records.Where(r => r.Kind == kind).Select(r => r.Bytes).ToArray();
            if (sizes.Length == 0)
            {
                continue;
            }
            string name = Describe(kind) + (sizes.Length == 1 ? "" : "s");
            string count = sizes.Length.ToString(CultureInfo.InvariantCulture);
            parts.Add(sizes.All(s => s == sizes[0])
                ? $"{count} {name} of {sizes[0].ToString(CultureInfo.InvariantCulture)} B"
                : $"{count} {name}, {sizes.Sum().ToString(CultureInfo.InvariantCulture)} B in total");
        }
        return parts.Count == 0 ? "none" : string.Join("; ", parts);
    }

    private static string Describe(CollectiveKind kind) => kind switch
    {
        CollectiveKind.AllReduce => "all-reduce",
        CollectiveKind.AllGather => "all-gather",
        CollectiveKind.ReduceScatter => "reduce-scatter",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown collective kind"),
    };
}
