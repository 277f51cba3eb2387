namespace ModelParallel.Runtime.Cpu;

/// <summary>
/// A <see cref="Tensor"/> over a managed array: float[] for Float32, double[] for Float64, int[] for Int32.
/// Views made by <see cref="Tensor.Slice"/> share the array and become unusable once their owner is disposed.
/// </summary>
public sealed class CpuTensor : Tensor
{
    private readonly CpuTensor? _owner;
    private bool _disposed;

    internal CpuTensor(CpuBackend backend, DType dtype, Array storage, int offset, int count, CpuTensor? owner)
        : base(backend, dtype, count)
    {
        Storage = storage;
        Offset = offset;
        _owner = owner;
    }

    /// <summary>The array holding the elements (shared with views).</summary>
    internal Array Storage { get; }

    /// <summary>Index of element 0 in <see cref="Storage"/>.</summary>
    internal int Offset { get; }

    /// <summary>Number of elements as an int (a CPU tensor never exceeds an array's length).</summary>
    internal int Length => (int)Count;

    /// <summary>True once the tensor (or, for a view, its owner) has been disposed.</summary>
    internal bool IsDisposed => _owner?._disposed ?? _disposed;

    /// <summary>The elements as a span of T, which must match <see cref="Tensor.DType"/>.</summary>
    internal Span<T> Span<T>()
    {
        ThrowIfDisposed();
        if (Storage is not T[] array)
        {
            throw new InvalidOperationException($"{this} is not a {typeof(T).Name} tensor");
        }
        return array.AsSpan(Offset, Length);
    }

    internal void ThrowIfDisposed()
    {
        if (IsDisposed)
        {
            throw new ObjectDisposedException(ToString(), "the tensor (or the tensor it is a view of) has been disposed");
        }
    }

    /// <summary>True when both tensors cover at least one common element.</summary>
    internal bool Overlaps(CpuTensor other) =>
        ReferenceEquals(Storage, other.Storage) && Offset < other.Offset + other.Length && other.Offset < Offset + Length;

    /// <summary>True when both tensors cover exactly the same elements.</summary>
    internal bool SameElements(CpuTensor other) =>
        ReferenceEquals(Storage, other.Storage) && Offset == other.Offset && Length == other.Length;

    protected override Tensor CreateView(long offset, long count)
    {
        ThrowIfDisposed();
        return new CpuTensor((CpuBackend)Backend, DType, Storage, Offset + (int)offset, (int)count, _owner ?? this);
    }

    protected override void Dispose(bool disposing)
    {
        if (_owner is null && !_disposed)
        {
            _disposed = true;
            ((CpuBackend)Backend).Release(Bytes);
        }
    }
}
