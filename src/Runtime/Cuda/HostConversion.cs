using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ModelParallel.Runtime.Cuda;

/// <summary>Converts host values (double, float or int) to and from the bytes of a device dtype, as the CPU backend
/// does: floating values round to nearest even; int values go into any dtype, floating values never into Int32, and
/// only Int32 tensors come out as int values.</summary>
internal static class HostConversion
{
    public static void Encode<T>(ReadOnlySpan<T> source, DType dtype, Span<byte> destination)
        where T : unmanaged
    {
        if (SameType<T>(dtype))
        {
            MemoryMarshal.AsBytes(source).CopyTo(destination);
            return;
        }
        switch (dtype)
        {
            case DType.Float64:
                Fill(source, MemoryMarshal.Cast<byte, double>(destination), static v => v);
                break;
            case DType.Float32:
                Fill(source, MemoryMarshal.Cast<byte, float>(destination), static v => (float)v);
                break;
            case DType.BFloat16:
                Fill(source, MemoryMarshal.Cast<byte, BFloat16>(destination), static v => (BFloat16)(float)v);
                break;
            case DType.Float16:
                Fill(source, MemoryMarshal.Cast<byte, Half>(destination), static v => (Half)v);
                break;
            case DType.Int32:
                throw new ArgumentException($"cannot upload {typeof(T).Name} values into an Int32 tensor", "src");
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype");
        }
    }

    public static void Decode<T>(ReadOnlySpan<byte> source, DType dtype, Span<T> destination)
        where T : unmanaged
    {
        if (SameType<T>(dtype))
        {
            source.CopyTo(MemoryMarshal.AsBytes(destination));
            return;
        }
        if (typeof(T) == typeof(int))
        {
            throw new ArgumentException($"cannot download a {dtype} tensor into int values", "dst");
        }
        switch (dtype)
        {
            case DType.Float64:
                Read(MemoryMarshal.Cast<byte, double>(source), destination, static v => v);
                break;
            case DType.Float32:
                Read(MemoryMarshal.Cast<byte, float>(source), destination, static v => v);
                break;
            case DType.BFloat16:
                Read(MemoryMarshal.Cast<byte, BFloat16>(source), destination, static v => (float)v);
                break;
            case DType.Float16:
                Read(MemoryMarshal.Cast<byte, Half>(source), destination, static v => (double)v);
                break;
            case DType.Int32:
                Read(MemoryMarshal.Cast<byte, int>(source), destination, static v => v);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype");
        }
    }

    private static bool SameType<T>(DType dtype) =>
        (typeof(T) == typeof(double) && dtype == DType.Float64) ||
        (typeof(T) == typeof(float) && dtype == DType.Float32) ||
        (typeof(T) == typeof(int) && dtype == DType.Int32);

    private static void Fill<T, TOut>(ReadOnlySpan<T> source, Span<TOut> destination, Func<double, TOut> convert)
        where T : unmanaged
    {
        for (int i = 0; i < source.Length; i++)
        {
            destination[i] = convert(AsDouble(source[i]));
        }
    }

    private static void Read<TIn, T>(ReadOnlySpan<TIn> source, Span<T> destination, Func<TIn, double> convert)
        where T : unmanaged
    {
        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = FromDouble<T>(convert(source[i]));
        }
    }

    private static double AsDouble<T>(T value)
        where T : unmanaged
    {
        if (typeof(T) == typeof(double))
        {
            return Unsafe.As<T, double>(ref value);
        }
        if (typeof(T) == typeof(float))
        {
            return Unsafe.As<T, float>(ref value);
        }
        if (typeof(T) == typeof(int))
        {
            return Unsafe.As<T, int>(ref value);
        }
        throw new NotSupportedException($"host element type {typeof(T).Name}");
    }

    private static T FromDouble<T>(double value)
        where T : unmanaged
    {
        if (typeof(T) == typeof(double))
        {
            return Unsafe.As<double, T>(ref value);
        }
        if (typeof(T) == typeof(float))
        {
            float single = (float)value;
            return Unsafe.As<float, T>(ref single);
        }
        throw new NotSupportedException($"host element type {typeof(T).Name}");
    }
}
