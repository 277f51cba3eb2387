using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace ModelParallel.Runtime.SafeTensors;

/// <summary>
/// Element conversions between a tensor's little-endian bytes and the caller's spans, vectorised where
/// System.Numerics.Tensors or <see cref="Vector{T}"/> does it, so that multi-GB tensors convert at memory speed.
/// </summary>
internal static class SafeTensorsConvert
{
    /// <summary>bfloat16 bit patterns to float: each pattern is the upper half of the float (exact).</summary>
    public static void BFloat16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        var wide = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            ref ushort from = ref MemoryMarshal.GetReference(source);
            ref uint to = ref MemoryMarshal.GetReference(wide);
            for (; i <= source.Length - Vector<ushort>.Count; i += Vector<ushort>.Count)
            {
                Vector.Widen(Vector.LoadUnsafe(ref from, (nuint)i), out Vector<uint> low, out Vector<uint> high);
                Vector.StoreUnsafe(Vector.ShiftLeft(low, 16), ref to, (nuint)i);
                Vector.StoreUnsafe(Vector.ShiftLeft(high, 16), ref to, (nuint)(i + Vector<uint>.Count));
            }
        }
        for (; i < source.Length; i++)
        {
            wide[i] = (uint)source[i] << 16;
        }
    }

    public static void BFloat16ToDouble(ReadOnlySpan<ushort> source, Span<double> destination) =>
        Widened(source, destination, static (s, d) => BFloat16ToSingle(s, d));

    public static void HalfToDouble(ReadOnlySpan<Half> source, Span<double> destination) =>
        Widened(source, destination, static (s, d) => TensorPrimitives.ConvertToSingle(s, d));

    /// <summary>Converts through a float buffer in chunks (both conversions to float are exact, and so is float to double).</summary>
    private static void Widened<T>(ReadOnlySpan<T> source, Span<double> destination, ToSingle<T> toSingle)
    {
        const int Chunk = 4096;
        Span<float> buffer = stackalloc float[Chunk];
        for (int i = 0; i < source.Length; i += Chunk)
        {
            int n = Math.Min(Chunk, source.Length - i);
            toSingle(source.Slice(i, n), buffer[..n]);
            TensorPrimitives.ConvertChecked<float, double>(buffer[..n], destination.Slice(i, n));
        }
    }

    private delegate void ToSingle<T>(ReadOnlySpan<T> source, Span<float> destination);

    /// <summary>
    /// double to bfloat16, rounded to nearest with ties to even in one step: double to float rounded to odd, then
    /// <see cref="BFloat16"/>'s float rounding. Rounding to float first with ties to even would round twice and
    /// can land on the wrong neighbour (1 + 2^-8 + 2^-30 would become 1 instead of 1 + 2^-7).
    /// </summary>
    public static BFloat16 DoubleToBFloat16(double value)
    {
        float nearest = (float)value;
        if (double.IsNaN(value) || (double)nearest == value)
        {
            return (BFloat16)nearest;
        }
        uint bits = BitConverter.SingleToUInt32Bits(nearest);
        if (Math.Abs((double)nearest) > Math.Abs(value))
        {
            bits--; // toward zero: one float step smaller in magnitude (infinity becomes the largest finite float)
        }
        return (BFloat16)BitConverter.UInt32BitsToSingle(bits | 1);
    }
}
