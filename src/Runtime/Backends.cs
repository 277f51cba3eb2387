using ModelParallel.Runtime.Cpu;
using ModelParallel.Runtime.Cuda;

namespace ModelParallel.Runtime;

/// <summary>Creates backends by kind, as command lines name them ("cpu", "cuda", "auto").</summary>
public static class Backends
{
    /// <summary>
    /// A CUDA backend on <paramref name="device"/>, or a CPU backend computing in <paramref name="cpuCompute"/>
    /// (Float32 unless given). Asking for CUDA where no GPU can be used throws <see cref="InvalidOperationException"/>
    /// saying why: it never falls back to the CPU.
    /// </summary>
    public static IBackend Create(BackendKind kind, int device = 0, DType? cpuCompute = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(device);
        switch (kind)
        {
            case BackendKind.Cpu:
                if (device != 0)
                {
                    throw new ArgumentOutOfRangeException(nameof(device), device, "the CPU backend has only device 0");
                }
                return new CpuBackend(cpuCompute ?? DType.Float32);
            case BackendKind.Cuda:
                if (cpuCompute is not null)
                {
                    throw new ArgumentException(
                        $"cpuCompute ({cpuCompute}) applies to the CPU backend only; the CUDA backend computes in BFloat16",
                        nameof(cpuCompute));
                }
                if (!CudaBackend.TryGetDeviceCount(out int count, out string reason))
                {
                    throw new InvalidOperationException($"the CUDA backend was requested but no GPU can be used: {reason}");
                }
                if (device >= count)
                {
                    throw new InvalidOperationException(
                        $"the CUDA backend was requested on device {device} but only {count} GPUs are present");
                }
                return new CudaBackend(device);
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown backend kind");
        }
    }

    /// <summary>"cpu" or "cuda" (any case); "auto" is CUDA when a GPU can be used, else the CPU.</summary>
    public static BackendKind Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "cpu" => BackendKind.Cpu,
            "cuda" => BackendKind.Cuda,
            "auto" => CudaBackend.TryGetDeviceCount(out _, out _) ? BackendKind.Cuda : BackendKind.Cpu,
            _ => throw new ArgumentException($"unknown backend '{name}': expected cpu, cuda or auto", nameof(name)),
        };
    }
}
