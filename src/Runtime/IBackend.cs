namespace ModelParallel.Runtime;

/// <summary>Which implementation runs the kernels and collectives.</summary>
public enum BackendKind
{
    /// <summary>Threads as ranks, shared-memory collectives, System.Numerics.Tensors math: the reference.</summary>
    Cpu,

    /// <summary>CUDA kernels, cuBLASLt GEMMs and NCCL collectives on NVIDIA GPUs.</summary>
    Cuda,
}

/// <summary>Memory accounting of a backend's allocator, in bytes.</summary>
public readonly record struct AllocatorStats(long BytesInUse, long PeakBytesInUse, long BytesReserved, long Allocations, long CacheHits);

/// <summary>
/// One rank's view of a backend: its allocator, its stream and its kernels. Not thread-safe: each
/// rank (thread or process) owns one.
/// </summary>
public interface IBackend : IDisposable
{
    BackendKind Kind { get; }

    /// <summary>Short human-readable name ("cpu-float32", "cuda:0 NVIDIA H200").</summary>
    string Name { get; }

    /// <summary>Dtype of activations and weights.</summary>
    DType Compute { get; }

    /// <summary>Dtype of parameter gradients (float32 on CUDA).</summary>
    DType GradType { get; }

    /// <summary>Dtype of per-row statistics (norm rstd, attention lse, cross-entropy sums).</summary>
    DType StatsType { get; }

    /// <summary>Dtype of optimizer master weights and moments.</summary>
    DType MasterType { get; }

    IKernels Kernels { get; }

    /// <summary>A tensor of <paramref name="count"/> elements with undefined contents, from the caching allocator.</summary>
    Tensor Allocate(DType dtype, long count);

    /// <summary>Copies host values into the tensor, converting to its dtype (counts must be equal).</summary>
    void Upload(Tensor dst, ReadOnlySpan<double> src);

    void Upload(Tensor dst, ReadOnlySpan<float> src);

    void Upload(Tensor dst, ReadOnlySpan<int> src);

    /// <summary>Copies the tensor to the host, converting from its dtype; waits for pending work first.</summary>
    void Download(Tensor src, Span<double> dst);

    void Download(Tensor src, Span<float> dst);

    void Download(Tensor src, Span<int> dst);

    /// <summary>Waits until all work issued on this backend's stream has completed.</summary>
    void Synchronize();

    /// <summary>
    /// Runs <paramref name="work"/> and returns the milliseconds it took on this backend's stream:
    /// CUDA events recorded around it (then waited for) on CUDA, a stopwatch on the CPU.
    /// </summary>
    double ElapsedMilliseconds(Action work);

    AllocatorStats AllocatorStats { get; }

    /// <summary>Resets the peak of <see cref="AllocatorStats"/> to the bytes now in use.</summary>
    void ResetPeak();
}
