namespace ModelParallel.Runtime.Cuda;

/// <summary>The <see cref="DType"/> of the element types device buffers hold: BFloat16, Half, float and int.</summary>
internal static class ElementType<T>
    where T : unmanaged
{
    private static readonly DType? Known =
        typeof(T) == typeof(BFloat16) ? DType.BFloat16 :
        typeof(T) == typeof(Half) ? DType.Float16 :
        typeof(T) == typeof(float) ? DType.Float32 :
        typeof(T) == typeof(int) ? DType.Int32 :
        null;

    /// <summary>The dtype of T, or <see cref="NotSupportedException"/> naming <paramref name="owner"/>.</summary>
    public static DType Require(string owner) =>
        Known ?? throw new NotSupportedException(
            $"{owner}<{typeof(T).Name}> is not supported: the element type must be BFloat16, Half, float or int");

    /// <summary>The value as a double (exact for every supported type).</summary>
    public static double ToDouble(T value) => value switch
    {
        BFloat16 b => (float)b,
        Half h => (double)h,
        float f => f,
        int i => i,
        _ => throw new NotSupportedException($"element type {typeof(T).Name}"),
    };
}
