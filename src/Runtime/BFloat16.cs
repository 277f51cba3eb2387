using System.Globalization;

namespace ModelParallel.Runtime;

/// <summary>
/// The bfloat16 format: the upper 16 bits of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits). Converting
/// from float rounds to nearest, ties to even; NaN stays NaN (made quiet, sign and upper payload kept); values
/// beyond the largest finite bfloat16 round to infinity. Converting to float is exact.
/// </summary>
public readonly struct BFloat16 : IEquatable<BFloat16>
{
    private const ushort QuietBit = 0x0040;

    private readonly ushort _bits;

    private BFloat16(ushort bits) => _bits = bits;

    /// <summary>The 16-bit pattern.</summary>
    public ushort Bits => _bits;

    public static BFloat16 FromBits(ushort bits) => new(bits);

    public static bool IsNaN(BFloat16 value) => (value._bits & 0x7FFF) > 0x7F80;

    public static bool IsInfinity(BFloat16 value) => (value._bits & 0x7FFF) == 0x7F80;

    public static explicit operator BFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000)
        {
            return new BFloat16((ushort)((bits >> 16) | QuietBit));
        }
        uint roundingBias = 0x7FFF + ((bits >> 16) & 1);
        return new BFloat16((ushort)((bits + roundingBias) >> 16));
    }

    public static implicit operator float(BFloat16 value) => BitConverter.UInt32BitsToSingle((uint)value._bits << 16);

    public bool Equals(BFloat16 other) => _bits == other._bits;

    public override bool Equals(object? obj) => obj is BFloat16 other && Equals(other);

    public override int GetHashCode() => _bits;

    public override string ToString() => ((float)this).ToString(CultureInfo.InvariantCulture);
}
