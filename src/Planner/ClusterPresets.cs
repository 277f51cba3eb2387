namespace ModelParallel.Planner;

/// <summary>
/// Nodes of 8 SXM GPUs on NVLink with one network adapter per GPU. Memory is what nvidia-smi reports
/// (81559 MiB for an H100 80GB); peaks are the dense bf16 datasheet figures; NVLink bandwidth is per
/// direction (H100/H200: 18 NVLink 4 links, 450 GB/s; A100: 12 NVLink 3 links, 300 GB/s); the network is
/// 400 Gb/s InfiniBand NDR per GPU for Hopper and 200 Gb/s HDR for A100 (DGX/HGX reference designs).
/// </summary>
public static class ClusterPresets
{
    private const double MiB = 1024.0 * 1024.0;

    public static IReadOnlyList<ClusterSpec> All { get; } =
    [
        Node("h100x8", 81559 * MiB, 989.4e12, 450e9, 400e9 / 8),
        Node("h200x8", 143771 * MiB, 989.4e12, 450e9, 400e9 / 8),
        Node("a100x8", 81920 * MiB, 312e12, 300e9, 200e9 / 8),
    ];

    /// <summary>The preset called <paramref name="name"/> with <paramref name="nodes"/> nodes.</summary>
    public static ClusterSpec Get(string name, int nodes) =>
        (All.FirstOrDefault(c => ModelPresets.Key(c.Name) == ModelPresets.Key(name))
         ?? throw new ArgumentException(
             $"unknown cluster preset '{name}'; known: {string.Join(", ", All.Select(c => c.Name))}"))
        with { Nodes = nodes };

    private static ClusterSpec Node(string name, double memory, double peak, double nvlink, double network) => new()
    {
        Name = name, GpusPerNode = 8, Nodes = 1, GpuMemoryBytes = memory, PeakFlops = peak,
        IntraNodeBandwidth = nvlink, InterNodeBandwidth = network,
    };
}
