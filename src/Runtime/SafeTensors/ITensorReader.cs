namespace ModelParallel.Runtime.SafeTensors;

/// <summary>
/// Named tensors read on demand, converted to the caller's element type. Reads are safe from several threads at once;
/// disposing while reads are in flight is not.
/// </summary>
public interface ITensorReader : IDisposable
{
    /// <summary>Every tensor name.</summary>
    IReadOnlyCollection<string> Names { get; }

    bool Contains(string name);

    /// <summary>The tensor's header entry; an unknown name is a <see cref="SafeTensorsException"/> naming the file(s) and tensor.</summary>
    SafeTensorInfo Info(string name);

    /// <summary>
    /// Reads destination.Length elements starting at element <paramref name="elementOffset"/> (row-major flat index),
    /// converted to double: exact for every dtype except I64 beyond 2^53, which rounds to nearest.
    /// </summary>
    void Read(string name, long elementOffset, Span<double> destination);

    /// <summary>As <see cref="Read(string, long, Span{double})"/>, for floating-point dtypes only; F64 rounds to nearest.</summary>
    void Read(string name, long elementOffset, Span<float> destination);

    /// <summary>As <see cref="Read(string, long, Span{double})"/>, for I32 and I64 only; an I64 value outside the int
    /// range is an error naming the value and its element index; floating-point dtypes are refused.</summary>
    void Read(string name, long elementOffset, Span<int> destination);
}
