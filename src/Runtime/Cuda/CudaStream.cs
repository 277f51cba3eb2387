using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>A CUDA stream of one device: work issued on it runs in order. Non-blocking: it does not
/// synchronise with the legacy default stream.</summary>
public sealed unsafe class CudaStream : IDisposable
{
    private readonly StreamHandle _handle;

    /// <summary>A stream on <paramref name="device"/>; <paramref name="priority"/> within
    /// <see cref="PriorityRange"/> (lower numbers run first; 0 is the default priority).</summary>
    public CudaStream(int device, int priority = 0)
    {
        var (least, greatest) = PriorityRange(device);
        if (priority > least || priority < greatest)
        {
            throw new ArgumentOutOfRangeException(nameof(priority), priority,
                $"stream priorities of cuda:{device} run from {greatest} (highest) to {least} (lowest)");
        }
        Device = device;
        Priority = priority;
        _handle = new StreamHandle(device);
        nint stream;
        Status.CheckCuda(CudaRuntime.StreamCreateWithPriority(&stream, CudaRuntime.StreamNonBlocking, priority),
            $"cudaStreamCreateWithPriority(cuda:{device}, priority {priority})");
        _handle.Adopt(stream);
    }

    public int Device { get; }

    public int Priority { get; }

    /// <summary>The cudaStream_t.</summary>
    /// <summary>True while the stream is being captured into a graph (nothing may wait on the host then).</summary>
    public unsafe bool IsCapturing
    {
        get
        {
            int status;
            Status.CheckCuda(CudaRuntime.StreamIsCapturing(Handle, &status), $"cudaStreamIsCapturing(cuda:{Device})");
            return status != 0;
        }
    }

    internal nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
            return _handle.DangerousGetHandle();
        }
    }

    /// <summary>(least, greatest) stream priority of the device; greatest is the numerically lowest.</summary>
    public static (int Least, int Greatest) PriorityRange(int device)
    {
        Cuda.Device.Validate(device);
        Cuda.Device.MakeCurrent(device);
        int least, greatest;
        Status.CheckCuda(CudaRuntime.DeviceGetStreamPriorityRange(&least, &greatest), "cudaDeviceGetStreamPriorityRange");
        return (least, greatest);
    }

    /// <summary>Blocks until all work issued so far has completed.</summary>
    public void Synchronize() =>
        Status.CheckCuda(CudaRuntime.StreamSynchronize(Handle), $"cudaStreamSynchronize(cuda:{Device})");

    /// <summary>True when all work issued so far has completed.</summary>
    public bool IsIdle
    {
        get
        {
            int code = CudaRuntime.StreamQuery(Handle);
            if (code == CudaRuntime.ErrorNotReady)
            {
                return false;
            }
            Status.CheckCuda(code, $"cudaStreamQuery(cuda:{Device})");
            return true;
        }
    }

    /// <summary>Work issued on this stream after this call waits for <paramref name="cudaEvent"/>'s recorded work
    /// (which may be on another stream or device).</summary>
    public void Wait(CudaEvent cudaEvent)
    {
        ArgumentNullException.ThrowIfNull(cudaEvent);
        Status.CheckCuda(CudaRuntime.StreamWaitEvent(Handle, cudaEvent.Handle, 0), $"cudaStreamWaitEvent(cuda:{Device})");
    }

    public void Dispose() => _handle.Dispose();

    public override string ToString() => $"CudaStream(cuda:{Device}, priority {Priority})";
}
