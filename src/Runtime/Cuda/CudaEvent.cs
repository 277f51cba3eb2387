using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>A CUDA event: a marker recorded on a stream, to wait on or to time work between two of them.</summary>
public sealed unsafe class CudaEvent : IDisposable
{
    private readonly EventHandle _handle;

    /// <summary>An event of <paramref name="device"/>; <paramref name="timing"/> false makes it cheaper when only
    /// used for ordering.</summary>
    public CudaEvent(int device, bool timing = true)
    {
        Cuda.Device.Validate(device);
        Cuda.Device.MakeCurrent(device);
        Device = device;
        Timing = timing;
        _handle = new EventHandle(device);
        nint cudaEvent;
        Status.CheckCuda(CudaRuntime.EventCreateWithFlags(&cudaEvent,
            timing ? CudaRuntime.EventDefault : CudaRuntime.EventDisableTiming), $"cudaEventCreateWithFlags(cuda:{device})");
        _handle.Adopt(cudaEvent);
    }

    public int Device { get; }

    public bool Timing { get; }

    internal nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
            return _handle.DangerousGetHandle();
        }
    }

    /// <summary>Marks the point reached by the work issued so far on <paramref name="stream"/> (same device).</summary>
    public void Record(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (stream.Device != Device)
        {
            throw new ArgumentException($"the event is on cuda:{Device} but the stream is on cuda:{stream.Device}", nameof(stream));
        }
        Status.CheckCuda(CudaRuntime.EventRecord(Handle, stream.Handle), $"cudaEventRecord(cuda:{Device})");
    }

    /// <summary>Blocks until the recorded work has completed.</summary>
    public void Synchronize() => Status.CheckCuda(CudaRuntime.EventSynchronize(Handle), $"cudaEventSynchronize(cuda:{Device})");

    /// <summary>True when the recorded work has completed (or nothing was recorded).</summary>
    public bool IsComplete
    {
        get
        {
            int code = CudaRuntime.EventQuery(Handle);
            if (code == CudaRuntime.ErrorNotReady)
            {
                return false;
            }
            Status.CheckCuda(code, $"cudaEventQuery(cuda:{Device})");
            return true;
        }
    }

    /// <summary>Milliseconds between two completed timing events recorded in that order.</summary>
    public static float ElapsedMilliseconds(CudaEvent start, CudaEvent end)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(end);
        if (!start.Timing || !end.Timing)
        {
            throw new ArgumentException("both events must be created with timing enabled");
        }
        float milliseconds;
        Status.CheckCuda(CudaRuntime.EventElapsedTime(&milliseconds, start.Handle, end.Handle), "cudaEventElapsedTime");
        return milliseconds;
    }

    public void Dispose() => _handle.Dispose();
}
