using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>Page-locked host memory (cudaHostAlloc, portable to every device): the source or destination of truly
/// asynchronous copies. Its contents are host memory, so a <see cref="Span"/> over them is safe; read it only after
/// the copies into it have completed.</summary>
public sealed unsafe class PinnedHostBuffer<T> : IDisposable
    where T : unmanaged
{
    private readonly PinnedMemoryHandle _handle = new();

    public PinnedHostBuffer(long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        Count = count;
        if (count > 0)
        {
            nint pointer;
            Status.CheckCuda(CudaRuntime.HostAlloc(&pointer, (nuint)Bytes, CudaRuntime.HostAllocPortable),
                $"cudaHostAlloc({Bytes} bytes)");
            _handle.Adopt(pointer);
        }
    }

    public long Count { get; }

    public long Bytes => Count * sizeof(T);

    /// <summary>The elements (at most int.MaxValue of them).</summary>
    public Span<T> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
            if (Count > int.MaxValue)
            {
                throw new InvalidOperationException($"a span holds at most {int.MaxValue} elements; the buffer has {Count}");
            }
            return new Span<T>((void*)_handle.DangerousGetHandle(), (int)Count);
        }
    }

    internal nint Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
            return _handle.DangerousGetHandle();
        }
    }

    public void Dispose() => _handle.Dispose();
}
