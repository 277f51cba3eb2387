namespace ModelParallel.Runtime.Diagnostics;

/// <summary>The collectives the benchmark measures, with nccl-tests' bus-bandwidth factors.</summary>
public enum CollectiveKind
{
    AllReduce,
    AllGather,
    ReduceScatter,
    Broadcast,
}

public static class CollectiveKindExtensions
{
    /// <summary>busbw = algbw * factor: 2(n-1)/n for all-reduce, (n-1)/n for all-gather and reduce-scatter, 1 for broadcast.</summary>
    public static double BusFactor(this CollectiveKind kind, int ranks) => kind switch
    {
        CollectiveKind.AllReduce => 2.0 * (ranks - 1) / ranks,
        CollectiveKind.AllGather or CollectiveKind.ReduceScatter => (ranks - 1) / (double)ranks,
        CollectiveKind.Broadcast => 1.0,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown collective"),
    };

    /// <summary>Parses "all_reduce", "allreduce" or "AllReduce" (case-insensitive).</summary>
    public static CollectiveKind Parse(string name) =>
        name.Replace("_", "", StringComparison.Ordinal).Replace("-", "", StringComparison.Ordinal).ToLowerInvariant() switch
        {
            "allreduce" => CollectiveKind.AllReduce,
            "allgather" => CollectiveKind.AllGather,
            "reducescatter" => CollectiveKind.ReduceScatter,
            "broadcast" => CollectiveKind.Broadcast,
            _ => throw new ArgumentException($"unknown collective '{name}' (all_reduce, all_gather, reduce_scatter, broadcast)"),
        };

    public static string SnakeName(this CollectiveKind kind) => kind switch
    {
        CollectiveKind.AllReduce => "all_reduce",
        CollectiveKind.AllGather => "all_gather",
        CollectiveKind.ReduceScatter => "reduce_scatter",
        _ => "broadcast",
    };
}
