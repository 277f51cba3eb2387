namespace ModelParallel.Runtime.Cuda;

/// <summary>The codes of libmpnative.so's mp_dtype.</summary>
internal static class NativeDType
{
    public static int Of(DType dtype) => dtype switch
    {
        DType.Float32 => 0,
        DType.Float64 => 1,
        DType.BFloat16 => 2,
        DType.Float16 => 3,
        DType.Int32 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };
}
