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

    /// <summary>
    /// Runs <paramref name="body"/> on <paramref name="ranks"/> ranks that all share GPU 0, each with its own backend and
    /// stream, exchanging by device copies ordered with CUDA events (<see cref="SameDeviceWorld"/>): the CUDA code paths
    /// of a multi-rank world on a machine with one GPU. <see cref="Run"/> with <see cref="BackendKind.Cuda"/> instead
    /// puts each rank on its own GPU with NCCL. The first failure is rethrown after the other ranks stop.
    /// </summary>
    public static void RunOnOneDevice(int ranks, Action<RankContext> body) => SameDeviceWorld.Run(ranks, body);

    /// <summary>GPUs this process can use (0, never an exception, when there are none).</summary>
    public static int CudaDeviceCount() => CudaBackend.TryGetDeviceCount(out int count, out _) ? count : 0;
}
