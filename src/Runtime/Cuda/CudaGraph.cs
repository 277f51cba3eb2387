using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>
/// Work captured from a stream once and replayed with one launch. Capture records, not runs, what
/// <see cref="Capture"/>'s action issues on the stream (kernels, GEMMs, copies, NCCL collectives); the action must
/// not allocate new device memory (use memory allocated before, or cached by the allocator), synchronise or copy to
/// pageable host memory. The memory the graph reads and writes must stay allocated while the graph lives.
/// </summary>
public sealed unsafe class CudaGraph : IDisposable
{
    private readonly GraphHandle _graph;
    private readonly GraphExecHandle _exec;

    private CudaGraph(int device, GraphHandle graph, GraphExecHandle exec)
    {
        Device = device;
        _graph = graph;
        _exec = exec;
    }

    public int Device { get; }

    /// <summary>Captures what <paramref name="record"/> issues on <paramref name="stream"/> (capture is local to the
    /// calling thread, so other threads may keep working) and instantiates it.</summary>
    public static CudaGraph Capture(CudaStream stream, Action record)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(record);
        Cuda.Device.MakeCurrent(stream.Device);
        Status.CheckCuda(CudaRuntime.StreamBeginCapture(stream.Handle, CudaRuntime.StreamCaptureModeThreadLocal),
            $"cudaStreamBeginCapture(cuda:{stream.Device})");
        var graph = new GraphHandle(stream.Device);
        try
        {
            record();
        }
        catch
        {
            nint abandoned;
            if (CudaRuntime.StreamEndCapture(stream.Handle, &abandoned) == CudaRuntime.Success)
            {
                graph.Adopt(abandoned);
            }
            else
            {
                CudaRuntime.GetLastError();
            }
            graph.Dispose();
            throw;
        }
        nint captured;
        Status.CheckCuda(CudaRuntime.StreamEndCapture(stream.Handle, &captured),
            $"cudaStreamEndCapture(cuda:{stream.Device}) (a call the capture does not allow invalidated it)");
        graph.Adopt(captured);
        var exec = new GraphExecHandle(stream.Device);
        try
        {
            nint instance;
            Status.CheckCuda(CudaRuntime.GraphInstantiateWithFlags(&instance, captured, 0),
                $"cudaGraphInstantiateWithFlags(cuda:{stream.Device})");
            exec.Adopt(instance);
        }
        catch
        {
            exec.Dispose();
            graph.Dispose();
            throw;
        }
        return new CudaGraph(stream.Device, graph, exec);
    }

    /// <summary>Issues the whole captured work on <paramref name="stream"/> (same device), asynchronously.</summary>
    public void Replay(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ObjectDisposedException.ThrowIf(_exec.IsClosed, this);
        if (stream.Device != Device)
        {
            throw new ArgumentException($"the graph was captured on cuda:{Device} but the stream is on cuda:{stream.Device}",
                nameof(stream));
        }
        Status.CheckCuda(CudaRuntime.GraphLaunch(_exec.DangerousGetHandle(), stream.Handle), $"cudaGraphLaunch(cuda:{Device})");
    }

    public void Dispose()
    {
        _exec.Dispose();
        _graph.Dispose();
    }
}
