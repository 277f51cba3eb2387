namespace ModelParallel.Runtime.Cuda;

/// <summary>What one CUDA device is.</summary>
public sealed record DeviceProperties(
    int Ordinal,
    string Name,
    long TotalMemoryBytes,
    int MultiProcessorCount,
    int ComputeCapabilityMajor,
    int ComputeCapabilityMinor,
    long L2CacheBytes)
{
    /// <summary>"9.0" for an H100 or H200.</summary>
    public string ComputeCapability => $"{ComputeCapabilityMajor}.{ComputeCapabilityMinor}";

    public override string ToString() =>
        $"cuda:{Ordinal} {Name} (sm_{ComputeCapabilityMajor}{ComputeCapabilityMinor}, {MultiProcessorCount} SMs, " +
        $"{TotalMemoryBytes / (1024.0 * 1024 * 1024):F1} GiB)";
}
