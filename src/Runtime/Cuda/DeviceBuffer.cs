using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>
/// <see cref="Count"/> elements of T (BFloat16, Half, float or int) in device memory from a
/// <see cref="CachingAllocator"/>. Copies with host spans complete before they return (the span may be reused at
/// once); copies with pinned buffers and other device memory are asynchronous on the given stream. Every copy
/// requires equal element counts. Disposing returns the memory to the allocator.
/// </summary>
public sealed unsafe class DeviceBuffer<T> : IDisposable
    where T : unmanaged
{
    private readonly DeviceBlockHandle? _block;

    public DeviceBuffer(CachingAllocator allocator, long count)
    {
        ArgumentNullException.ThrowIfNull(allocator);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        DType = ElementType<T>.Require(nameof(DeviceBuffer<T>));
        Count = count;
        Device = allocator.Device;
        _block = count == 0 ? null : allocator.Allocate(Bytes);
    }

    public long Count { get; }

    public long Bytes => Count * sizeof(T);

    public int Device { get; }

    public DType DType { get; }

    /// <summary>The device address (0 for an empty buffer).</summary>
    internal nint Pointer
    {
        get
        {
            if (_block is null)
            {
                return 0;
            }
            ObjectDisposedException.ThrowIf(_block.IsClosed, this);
            return _block.Pointer;
        }
    }

    /// <summary>Copies host values in; returns once they have been read.</summary>
    public void CopyFrom(ReadOnlySpan<T> source, CudaStream stream)
    {
        CheckStream(stream);
        CheckCount(source.Length, "source");
        fixed (T* pointer = source)
        {
            Copy(Pointer, (nint)pointer, CudaRuntime.MemcpyHostToDevice, stream, "host span -> device");
        }
        stream.Synchronize();
    }

    /// <summary>Copies the elements out; returns once they have been written (after the work issued before it on
    /// <paramref name="stream"/>).</summary>
    public void CopyTo(Span<T> destination, CudaStream stream)
    {
        CheckStream(stream);
        CheckCount(destination.Length, "destination");
        fixed (T* pointer = destination)
        {
            Copy((nint)pointer, Pointer, CudaRuntime.MemcpyDeviceToHost, stream, "device -> host span");
            stream.Synchronize();
        }
    }

    /// <summary>Issues a copy from pinned host memory; <paramref name="source"/> must not change until it completes.</summary>
    public void CopyFromAsync(PinnedHostBuffer<T> source, CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(source);
        CheckStream(stream);
        CheckCount(source.Count, "source");
        Copy(Pointer, source.Pointer, CudaRuntime.MemcpyHostToDevice, stream, "pinned -> device");
    }

    /// <summary>Issues a copy into pinned host memory; read <paramref name="destination"/> after it completes.</summary>
    public void CopyToAsync(PinnedHostBuffer<T> destination, CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(destination);
        CheckStream(stream);
        CheckCount(destination.Count, "destination");
        Copy(destination.Pointer, Pointer, CudaRuntime.MemcpyDeviceToHost, stream, "device -> pinned");
    }

    /// <summary>Issues a copy from another buffer, on this device or a peer.</summary>
    public void CopyFromAsync(DeviceBuffer<T> source, CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(source);
        CheckStream(stream);
        CheckCount(source.Count, "source");
        Copy(Pointer, source.Pointer, CudaRuntime.MemcpyDefault, stream, "device -> device");
    }

    /// <summary>Issues a copy from a tensor of the same dtype and count.</summary>
    public void CopyFromAsync(CudaTensor source, CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(source);
        CheckTensor(source, nameof(source));
        CheckStream(stream);
        Copy(Pointer, source.Pointer, CudaRuntime.MemcpyDefault, stream, "tensor -> device buffer");
    }

    /// <summary>Issues a copy into a tensor of the same dtype and count.</summary>
    public void CopyToAsync(CudaTensor destination, CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(destination);
        CheckTensor(destination, nameof(destination));
        CheckStream(stream);
        Copy(destination.Pointer, Pointer, CudaRuntime.MemcpyDefault, stream, "device buffer -> tensor");
    }

    /// <summary>Issues setting every element to <paramref name="value"/>.</summary>
    public void Fill(T value, CudaStream stream)
    {
        CheckStream(stream);
        if (Count == 0)
        {
            return;
        }
        Cuda.Device.MakeCurrent(Device);
        if (IsAllZeroBits(value))
        {
            Status.CheckCuda(CudaRuntime.MemsetAsync(Pointer, 0, (nuint)Bytes, stream.Handle), $"cudaMemsetAsync({Bytes} bytes)");
            return;
        }
        Status.CheckNative(MpNative.Fill(Pointer, Count, ElementType<T>.ToDouble(value), NativeDType.Of(DType), stream.Handle),
            $"mp_fill({Count} x {DType})");
    }

    public void Dispose() => _block?.Dispose();

    private static bool IsAllZeroBits(T value) =>
        new ReadOnlySpan<byte>(&value, sizeof(T)).IndexOfAnyExcept((byte)0) < 0;

    private void Copy(nint dst, nint src, int kind, CudaStream stream, string what)
    {
        if (Count == 0)
        {
            return;
        }
        Cuda.Device.MakeCurrent(stream.Device);
        Status.CheckCuda(CudaRuntime.MemcpyAsync(dst, src, (nuint)Bytes, kind, stream.Handle),
            $"cudaMemcpyAsync({what}, {Bytes} bytes)");
    }

    private void CheckStream(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (stream.Device != Device)
        {
            throw new ArgumentException($"the buffer is on cuda:{Device} but the stream is on cuda:{stream.Device}", nameof(stream));
        }
    }

    private void CheckCount(long count, string name)
    {
        if (count != Count)
        {
            throw new ArgumentException($"{name} has {count} elements but the buffer has {Count}", name);
        }
    }

    private void CheckTensor(CudaTensor tensor, string name)
    {
        if (tensor.DType != DType)
        {
            throw new ArgumentException($"{name} has dtype {tensor.DType} but the buffer holds {DType}", name);
        }
        CheckCount(tensor.Count, name);
    }
}
