using System.Diagnostics;
using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>
/// One rank's CUDA device: one stream on which every kernel, GEMM, copy and collective of this backend is issued in
/// order, a caching allocator, cuBLASLt GEMMs and the libmpnative.so kernels. Activations and weights are BFloat16;
/// gradients, statistics and optimizer state Float32. Uploads and downloads convert on the host and go through a
/// pinned staging buffer. Waits (<see cref="Synchronize"/>, downloads) poll the stream and the NCCL communicators
/// issued on it, so that an asynchronous NCCL error, a failed rank of the same <see cref="CudaWorld"/> or a wait
/// longer than <see cref="CommunicationTimeout"/> throws instead of hanging. Not thread-safe: one per rank.
/// </summary>
public sealed class CudaBackend : IBackend
{
    private const long StagingBytes = 16L << 20;

    private readonly object _communicatorsLock = new();
    private readonly List<NcclCommunicator> _communicators = [];
    private readonly CudaEvent _done;
    private readonly CudaEvent _timingStart;
    private readonly CudaEvent _timingEnd;
    private readonly CudaEvent _stagingFree;
    private PinnedHostBuffer<byte>? _staging;
    private DeviceBlockHandle? _workspace;
    private bool _disposed;

    /// <summary>A backend on <paramref name="device"/> with a stream of <paramref name="streamPriority"/>.
    /// Throws <see cref="InvalidOperationException"/> when no CUDA device can be used, saying why.</summary>
    public CudaBackend(int device = 0, int streamPriority = 0)
    {
        if (!TryGetDeviceCount(out int count, out string reason))
        {
            throw new InvalidOperationException($"the CUDA backend needs a GPU, and none can be used: {reason}");
        }
        if (device < 0 || device >= count)
        {
            throw new ArgumentOutOfRangeException(nameof(device), device, $"device ordinals are 0 to {count - 1}");
        }
        Device = device;
        Cuda.Device.MakeCurrent(device);
        Properties = Cuda.Device.GetProperties(device);
        var created = new List<IDisposable>();
        try
        {
            Stream = Track(new CudaStream(device, streamPriority), created);
            TransferStream = Track(new CudaStream(device, streamPriority), created);
            Allocator = Track(new CachingAllocator(device), created);
            _done = Track(new CudaEvent(device, timing: false), created);
            _stagingFree = Track(new CudaEvent(device, timing: false), created);
            _timingStart = Track(new CudaEvent(device, timing: true), created);
            _timingEnd = Track(new CudaEvent(device, timing: true), created);
            Gemm = Track(new CublasLtGemm(this), created);
        }
        catch
        {
            for (int i = created.Count - 1; i >= 0; i--)
            {
                created[i].Dispose();
            }
            throw;
        }
        Kernels = new CudaKernels(this);
    }

    public BackendKind Kind => BackendKind.Cuda;

    public string Name => $"cuda:{Device} {Properties.Name}";

    public DType Compute => DType.BFloat16;

    public DType GradType => DType.Float32;

    public DType StatsType => DType.Float32;

    public DType MasterType => DType.Float32;

    public int Device { get; }

    public DeviceProperties Properties { get; }

    /// <summary>The stream everything of this backend is issued on.</summary>
    public CudaStream Stream { get; }

    /// <summary>Where point-to-point transfers run beside the compute on <see cref="Stream"/> (<see cref="TransferGroup"/>).</summary>
    public CudaStream TransferStream { get; }

    public CachingAllocator Allocator { get; }

    /// <summary>The GEMM engine behind <see cref="CudaKernels.Gemm"/>.</summary>
    public CublasLtGemm Gemm { get; }

    public CudaKernels Kernels { get; }

    IKernels IBackend.Kernels => Kernels;

    /// <summary>Longest a wait may take while NCCL communicators are issued on this backend (default 10 minutes):
    /// past it the wait throws <see cref="TimeoutException"/> and the communicators are aborted on dispose.</summary>
    public TimeSpan CommunicationTimeout { get; set; } = TimeSpan.FromMinutes(10);

    public AllocatorStats AllocatorStats => Allocator.Stats;

    /// <summary>Set by <see cref="CudaWorld.Run"/>: cancelled when another rank of the world failed.</summary>
    internal CancellationToken WorldCancellation { get; set; }

    /// <summary>Number of devices CUDA can use, or 0 with the reason (no driver, no runtime library, no device).
    /// Returns count &gt; 0. Never throws.</summary>
    public static bool TryGetDeviceCount(out int count, out string reason)
    {
        try
        {
            count = Cuda.Device.Count;
            reason = count == 0 ? "the CUDA driver reports no device" : "";
        }
        catch (Exception e)
        {
            count = 0;
            reason = e.Message;
        }
        return count > 0;
    }

    public CudaTensor Allocate(DType dtype, long count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        long bytes = count * dtype.Size();
        return new CudaTensor(this, dtype, count, bytes == 0 ? null : Allocator.Allocate(bytes));
    }

    Tensor IBackend.Allocate(DType dtype, long count) => Allocate(dtype, count);

    public void Upload(Tensor dst, ReadOnlySpan<double> src) => UploadValues(dst, src);

    public void Upload(Tensor dst, ReadOnlySpan<float> src) => UploadValues(dst, src);

    public void Upload(Tensor dst, ReadOnlySpan<int> src) => UploadValues(dst, src);

    public void Download(Tensor src, Span<double> dst) => DownloadValues(src, dst);

    public void Download(Tensor src, Span<float> dst) => DownloadValues(src, dst);

    public void Download(Tensor src, Span<int> dst) => DownloadValues(src, dst);

    /// <summary>Waits until all work issued on <see cref="Stream"/> has completed.</summary>
    public void Synchronize()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Cuda.Device.MakeCurrent(Device);
        _done.Record(Stream);
        Wait(_done, "synchronize");
    }

    public double ElapsedMilliseconds(Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        ObjectDisposedException.ThrowIf(_disposed, this);
        Cuda.Device.MakeCurrent(Device);
        _timingStart.Record(Stream);
        work();
        _timingEnd.Record(Stream);
        Wait(_timingEnd, "timing");
        return CudaEvent.ElapsedMilliseconds(_timingStart, _timingEnd);
    }

    public void ResetPeak() => Allocator.ResetPeak();

    /// <summary>The tensor as a CUDA tensor of this backend's device, or <see cref="ArgumentException"/> naming it.</summary>
    internal CudaTensor Require(Tensor? tensor, string name)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        if (tensor is not CudaTensor cuda)
        {
            throw new ArgumentException($"{name} is a tensor of {tensor.Backend.Name}, not of {Name}", name);
        }
        if (cuda.Device != Device)
        {
            throw new ArgumentException($"{name} is on cuda:{cuda.Device} but the backend is on cuda:{Device}", name);
        }
        return cuda;
    }

    /// <summary>Scratch device memory of at least <paramref name="bytes"/>, owned by the backend and grown as
    /// needed; valid until the next call (work issued on the stream before it may still use the old one, which the
    /// stream order protects).</summary>
    internal nint Workspace(long bytes)
    {
        if (bytes <= 0)
        {
            return 0;
        }
        if (_workspace is null || _workspace.Bytes < bytes)
        {
            _workspace?.Dispose();
            _workspace = null;
            _workspace = Allocator.Allocate(bytes);
        }
        return _workspace.Pointer;
    }

    internal void Register(NcclCommunicator communicator)
    {
        lock (_communicatorsLock)
        {
            _communicators.Add(communicator);
        }
    }

    internal void Unregister(NcclCommunicator communicator)
    {
        lock (_communicatorsLock)
        {
            _communicators.Remove(communicator);
        }
    }

    internal NcclCommunicator[] Communicators()
    {
        lock (_communicatorsLock)
        {
            return [.. _communicators];
        }
    }

    /// <summary>
    /// Waits for <paramref name="recorded"/>. Without communicators (and outside a world) this is a plain event
    /// synchronisation; otherwise the event is polled while checking each communicator's asynchronous error, the
    /// world's cancellation and <see cref="CommunicationTimeout"/>. A failed wait marks the communicators failed
    /// (they abort instead of waiting for peers when disposed).
    /// </summary>
    internal void Wait(CudaEvent recorded, string what)
    {
        var communicators = Communicators();
        if (communicators.Length == 0 && !WorldCancellation.CanBeCanceled)
        {
            recorded.Synchronize();
            return;
        }
        var clock = Stopwatch.StartNew();
        int polls = 0;
        while (!recorded.IsComplete)
        {
            try
            {
                foreach (var communicator in communicators)
                {
                    communicator.ThrowIfAsyncError();
                }
                if (WorldCancellation.IsCancellationRequested)
                {
                    throw new OperationCanceledException(
                        $"{Name}: {what} abandoned because another rank of the world failed", WorldCancellation);
                }
                if (clock.Elapsed > CommunicationTimeout)
                {
                    throw new TimeoutException(
                        $"{Name}: {what} waited more than {CommunicationTimeout} for its stream; a peer may have failed or " +
                        "not issued the same collectives");
                }
            }
            catch
            {
                foreach (var communicator in communicators)
                {
                    communicator.MarkFailed();
                }
                throw;
            }
            Backoff(polls++);
        }
    }

    private static void Backoff(int polls)
    {
        if (polls < 1000)
        {
            Thread.SpinWait(32);
        }
        else if (polls < 2000)
        {
            Thread.Yield();
        }
        else
        {
            Thread.Sleep(1);
        }
    }

    private void UploadValues<T>(Tensor dst, ReadOnlySpan<T> src)
        where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var tensor = Require(dst, nameof(dst));
        if (src.Length != tensor.Count)
        {
            throw new ArgumentException($"dst has {tensor.Count} elements but src has {src.Length}", nameof(src));
        }
        Cuda.Device.MakeCurrent(Device);
        int size = tensor.DType.Size();
        var staging = Staging();
        int chunk = (int)(StagingBytes / size);
        for (int offset = 0; offset < src.Length; offset += chunk)
        {
            int n = Math.Min(chunk, src.Length - offset);
            Wait(_stagingFree, "upload");
            HostConversion.Encode(src.Slice(offset, n), tensor.DType, staging.Span[..(n * size)]);
            Status.CheckCuda(CudaRuntime.MemcpyAsync(tensor.Pointer + (nint)((long)offset * size), staging.Pointer,
                (nuint)(n * size), CudaRuntime.MemcpyHostToDevice, Stream.Handle), $"cudaMemcpyAsync(upload, {n * size} bytes)");
            _stagingFree.Record(Stream);
        }
    }

    private void DownloadValues<T>(Tensor src, Span<T> dst)
        where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var tensor = Require(src, nameof(src));
        if (dst.Length != tensor.Count)
        {
            throw new ArgumentException($"src has {tensor.Count} elements but dst has {dst.Length}", nameof(dst));
        }
        Cuda.Device.MakeCurrent(Device);
        if (dst.Length == 0)
        {
            Synchronize();
            return;
        }
        int size = tensor.DType.Size();
        var staging = Staging();
        int chunk = (int)(StagingBytes / size);
        for (int offset = 0; offset < dst.Length; offset += chunk)
        {
            int n = Math.Min(chunk, dst.Length - offset);
            Status.CheckCuda(CudaRuntime.MemcpyAsync(staging.Pointer, tensor.Pointer + (nint)((long)offset * size),
                (nuint)(n * size), CudaRuntime.MemcpyDeviceToHost, Stream.Handle), $"cudaMemcpyAsync(download, {n * size} bytes)");
            _stagingFree.Record(Stream);
            Wait(_stagingFree, "download");
            HostConversion.Decode(staging.Span[..(n * size)], tensor.DType, dst.Slice(offset, n));
        }
    }

    private PinnedHostBuffer<byte> Staging() => _staging ??= new PinnedHostBuffer<byte>(StagingBytes);

    private static TItem Track<TItem>(TItem item, List<IDisposable> created)
        where TItem : IDisposable
    {
        created.Add(item);
        return item;
    }

    /// <summary>Waits for the stream (aborting this backend's communicators if that fails) and frees everything.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        try
        {
            Synchronize();
            TransferStream.Synchronize();
        }
        catch (Exception e) when (e is NativeCallException or OperationCanceledException or TimeoutException)
        {
            foreach (var communicator in Communicators())
            {
                communicator.Abort();
            }
        }
        _disposed = true;
        _workspace?.Dispose();
        Gemm.Dispose();
        _staging?.Dispose();
        _stagingFree.Dispose();
        _done.Dispose();
        _timingStart.Dispose();
        _timingEnd.Dispose();
        Allocator.Dispose();
        TransferStream.Dispose();
        Stream.Dispose();
    }
}
