using ModelParallel.Runtime.Cpu;
using ModelParallel.Runtime.Cuda;

namespace ModelParallel.Runtime;

/// <summary>All ranks of a world as threads of this process, on either backend.</summary>
public static class ThreadWorlds
{
    /// <summary>
    /// Runs <paramref name="body"/> on <paramref name="ranks"/> ranks: one GPU each through NCCL on CUDA, or
    /// threads with shared-memory collectives on the CPU (computing in <paramref name="cpuCompute"/>).
    /// The first failure is rethrown after the other ranks stop.
    /// </summary>
    public static void Run(BackendKind kind, int ranks, Action<RankContext> body, DType cpuCompute = DType.Float32)
    {
        switch (kind)
        {
            case BackendKind.Cuda:
                CudaWorld.Run(ranks, body);
                break;
            case BackendKind.Cpu:
                CpuWorld.Run(ranks, cpuCompute, body);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown backend kind");
        }
    }

    /// <summary>GPUs this process can use (0, never an exception, when there are none).</summary>
    public static int CudaDeviceCount() => CudaBackend.TryGetDeviceCount(out int count, out _) ? count : 0;
}
