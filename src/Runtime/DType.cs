namespace ModelParallel.Runtime;

/// <summary>Element types a <see cref="Tensor"/> can hold.</summary>
public enum DType
{
    Float32,
    Float64,
    BFloat16,
    Float16,
    Int32,
}

public static class DTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int Size(this DType dtype) => dtype switch
    {
        DType.Float32 => 4,
        DType.Float64 => 8,
        DType.BFloat16 => 2,
        DType.Float16 => 2,
        DType.Int32 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    public static bool IsFloatingPoint(this DType dtype) => dtype != DType.Int32;
}
