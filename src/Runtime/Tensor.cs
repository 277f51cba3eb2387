namespace ModelParallel.Runtime;

/// <summary>
/// A flat run of <see cref="Count"/> elements of one <see cref="DType"/> owned by one backend
/// (host arrays on the CPU backend, device memory on CUDA). Shapes are the caller's business:
/// layers keep row-major [rows, cols] views by convention. A tensor made by
/// <see cref="Slice"/> is a view: disposing it frees nothing.
/// </summary>
public abstract class Tensor : IDisposable
{
    protected Tensor(IBackend backend, DType dtype, long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        Backend = backend;
        DType = dtype;
        Count = count;
    }

    /// <summary>The backend whose memory holds the elements.</summary>
    public IBackend Backend { get; }

    public DType DType { get; }

    /// <summary>Number of elements.</summary>
    public long Count { get; }

    /// <summary>Size in bytes.</summary>
    public long Bytes => Count * DType.Size();

    /// <summary>A view of <paramref name="count"/> elements starting at element <paramref name="offset"/>.</summary>
    public Tensor Slice(long offset, long count)
    {
        if (offset < 0 || count < 0 || offset + count > Count)
        {
            throw new ArgumentOutOfRangeException(nameof(offset),
                $"slice [{offset}, {offset + count}) is outside a tensor of {Count} elements");
        }
        return CreateView(offset, count);
    }

    protected abstract Tensor CreateView(long offset, long count);

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
    }

    public override string ToString() => $"Tensor({DType}, {Count}) on {Backend.Name}";
}
