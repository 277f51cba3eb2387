namespace ModelParallel.Runtime.SafeTensors;

/// <summary>A tensor to write: <paramref name="Data"/> holds the product of <paramref name="Shape"/> elements
/// (1 for a scalar, shape []) in row-major order, converted to <paramref name="DType"/> when written.</summary>
public sealed record SafeTensorEntry(string Name, SafeTensorsDType DType, long[] Shape, ReadOnlyMemory<double> Data);
