namespace ModelParallel.Runtime.Cuda;

/// <summary>
/// A tensor in device memory: a block from its backend's <see cref="CachingAllocator"/>, or a view (made by
/// <see cref="Tensor.Slice"/>) into another tensor's block. Disposing an owning tensor returns its block to the
/// allocator; disposing a view frees nothing.
/// </summary>
public sealed class CudaTensor : Tensor
{
    private readonly DeviceBlockHandle? _block;
    private readonly CudaTensor? _parent;
    private readonly long _byteOffset;

    internal CudaTensor(CudaBackend backend, DType dtype, long count, DeviceBlockHandle? block)
        : base(backend, dtype, count)
    {
        Owner = backend;
        _block = block;
    }

    private CudaTensor(CudaTensor parent, long offset, long count)
        : base(parent.Owner, parent.DType, count)
    {
        Owner = parent.Owner;
        _parent = parent;
        _byteOffset = offset * parent.DType.Size();
    }

    /// <summary>The device holding the elements.</summary>
    public int Device => Owner.Device;

    /// <summary>The device address of the first element (0 for an empty tensor). Throws
    /// <see cref="ObjectDisposedException"/> once the memory has been returned.</summary>
    public nint Pointer
    {
        get
        {
            if (_parent is not null)
            {
                return _parent.Pointer + (nint)_byteOffset;
            }
            if (_block is null)
            {
                return 0;
            }
            ObjectDisposedException.ThrowIf(_block.IsClosed, this);
            return _block.Pointer;
        }
    }

    internal CudaBackend Owner { get; }

    protected override Tensor CreateView(long offset, long count) => new CudaTensor(this, offset, count);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _block?.Dispose();
        }
    }
}
