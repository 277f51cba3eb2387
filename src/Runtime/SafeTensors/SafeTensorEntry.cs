namespace ModelParallel.Runtime.SafeTensors;

/// <summary>
/// A tensor to write: the product of <see cref="Shape"/> elements (1 for a scalar, shape []) in row-major order,
/// converted to <see cref="DType"/> when written. The values are given, or loaded by a function the writer calls
/// once, when it reaches the tensor, so that a large export holds one tensor at a time.
/// </summary>
public sealed class SafeTensorEntry
{
    private readonly Func<ReadOnlyMemory<double>> _load;

    public SafeTensorEntry(string name, SafeTensorsDType dtype, long[] shape, ReadOnlyMemory<double> data)
        : this(name, dtype, shape, () => data)
    {
    }

    public SafeTensorEntry(string name, SafeTensorsDType dtype, long[] shape, Func<ReadOnlyMemory<double>> load)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(load);
        Name = name;
        DType = dtype;
        Shape = shape;
        _load = load;
    }

    public string Name { get; }

    public SafeTensorsDType DType { get; }

    public long[] Shape { get; }

    /// <summary>The values (calls the load function of a loaded entry).</summary>
    public ReadOnlyMemory<double> Load() => _load();
}
