namespace ModelParallel.Planner;

/// <summary>
/// Nodes of identical GPUs. Bandwidths are per GPU and per direction, as datasheets give them:
/// NVLink inside a node, the GPU's own network adapter between nodes.
/// </summary>
public sealed record ClusterSpec
{
    public required string Name { get; init; }

    public required int GpusPerNode { get; init; }

    public required int Nodes { get; init; }

    /// <summary>Memory of one GPU in bytes, as the driver reports it.</summary>
    public required double GpuMemoryBytes { get; init; }

    /// <summary>Dense peak of one GPU in FLOP/s at the training precision (bf16 for mixed precision).</summary>
    public required double PeakFlops { get; init; }

    /// <summary>Bytes per second one GPU sends to the others of its node (NVLink).</summary>
    public required double IntraNodeBandwidth { get; init; }

    /// <summary>Bytes per second one GPU sends to other nodes (its network adapter).</summary>
    public required double InterNodeBandwidth { get; init; }

    /// <summary>The most GPUs the planner plans for: sizes stay far inside 32-bit arithmetic, and a larger cluster is a typo.</summary>
    public const int MaxGpus = 1 << 20;

    /// <summary>GPUs per node x nodes; checked, so use it after <see cref="Validate"/>.</summary>
    public int TotalGpus => checked(GpusPerNode * Nodes);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first value that is not usable.</summary>
    public void Validate()
    {
        if (GpusPerNode <= 0)
        {
            throw new ArgumentException($"GPUs per node must be positive (got {GpusPerNode}): a cluster without GPUs has nothing to plan for");
        }
        if (Nodes <= 0)
        {
            throw new ArgumentException($"nodes must be positive (got {Nodes}): a cluster without GPUs has nothing to plan for");
        }
        if ((long)GpusPerNode * Nodes > MaxGpus)
        {
            throw new ArgumentException(
                $"{Nodes} nodes x {GpusPerNode} GPUs per node = {(long)GpusPerNode * Nodes} GPUs, more than the {MaxGpus} the planner plans for");
        }
        Positive(GpuMemoryBytes, "GPU memory");
        Positive(PeakFlops, "peak FLOP/s");
        Positive(IntraNodeBandwidth, "intra-node bandwidth");
        Positive(InterNodeBandwidth, "inter-node bandwidth");
    }

    private static void Positive(double value, string name)
    {
        if (!(value > 0) || double.IsInfinity(value))
        {
            throw new ArgumentException($"cluster {name} must be positive and finite (got {value})");
        }
    }
}
