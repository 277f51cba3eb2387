namespace ModelParallel.Runtime.SafeTensors;

/// <summary>
/// One tensor of a safetensors file as its header describes it. <paramref name="DataStart"/> and
/// <paramref name="DataEnd"/> are the header's data_offsets: bytes relative to the start of the data region
/// (byte 8 + header length), end exclusive.
/// </summary>
public sealed record SafeTensorInfo(string Name, SafeTensorsDType DType, long[] Shape, long DataStart, long DataEnd)
{
    /// <summary>Elements: the product of <see cref="Shape"/>, 1 for a scalar (shape []). Checked arithmetic.</summary>
    public long Count => ElementCount(Shape);

    /// <summary>Bytes of data: <see cref="DataEnd"/> - <see cref="DataStart"/>.</summary>
    public long Bytes => DataEnd - DataStart;

    /// <summary>The product of <paramref name="shape"/> (1 for []); 0 when any dimension is 0, even if the others
    /// would overflow; otherwise <see cref="OverflowException"/> when it does not fit in a long.</summary>
    public static long ElementCount(ReadOnlySpan<long> shape)
    {
        if (shape.Contains(0L))
        {
            return 0;
        }
        long count = 1;
        foreach (long dim in shape)
        {
            count = checked(count * dim);
        }
        return count;
    }

    public override string ToString() =>
        $"{Name}: {DType.HeaderName()} [{string.Join(", ", Shape)}] bytes [{DataStart}, {DataEnd})";
}
