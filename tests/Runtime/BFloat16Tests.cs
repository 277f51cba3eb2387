using ModelParallel.Runtime;

namespace ModelParallel.Tests.Runtime;

public class BFloat16Tests
{
    [Fact]
    public void EveryBitPatternRoundTripsThroughFloat()
    {
        int nans = 0;
        for (int bits = 0; bits <= ushort.MaxValue; bits++)
        {
            var value = BFloat16.FromBits((ushort)bits);
            float widened = value;
            Assert.Equal((uint)bits << 16, BitConverter.SingleToUInt32Bits(widened));
            var back = (BFloat16)widened;
            if (BFloat16.IsNaN(value))
            {
                nans++;
                Assert.True(BFloat16.IsNaN(back), $"NaN pattern 0x{bits:X4} came back as 0x{back.Bits:X4}");
                Assert.Equal(bits | 0x0040, back.Bits);
            }
            else
            {
                Assert.Equal(bits, back.Bits);
            }
        }
        Assert.Equal(2 * 127, nans);
    }

    [Fact]
    public void RoundsToNearestWithTiesToEven()
    {
        // Between 1 (0x3F80) and the next bfloat16 1 + 2^-7 (0x3F81), and between 0x3F81 and 0x3F82.
        Assert.Equal(0x3F80, ((BFloat16)(1f + MathF.Pow(2, -8))).Bits);
        Assert.Equal(0x3F82, ((BFloat16)(1f + 3 * MathF.Pow(2, -8))).Bits);
        Assert.Equal(0x3F81, ((BFloat16)(1f + MathF.Pow(2, -8) + MathF.Pow(2, -20))).Bits);
        Assert.Equal(0x3F80, ((BFloat16)(1f + MathF.Pow(2, -8) - MathF.Pow(2, -20))).Bits);
        Assert.Equal(0xBF80, ((BFloat16)(-1f - MathF.Pow(2, -8))).Bits);
    }

    [Fact]
    public void EveryFloatBetweenTwoNeighboursRoundsToTheNearest()
    {
        var rng = Support.TestRandom.Create();
        for (int trial = 0; trial < 100_000; trial++)
        {
            // Below the largest finite bfloat16, so that both neighbours are finite (overflow is tested apart).
            uint bits = (uint)rng.NextInt64(0, 0x7F7F_0000);
            float value = BitConverter.UInt32BitsToSingle(bits | (rng.Next(2) == 0 ? 0u : 0x8000_0000u));
            var rounded = (BFloat16)value;
            float below = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(value) & 0xFFFF_0000);
            float above = BitConverter.UInt32BitsToSingle((BitConverter.SingleToUInt32Bits(value) & 0xFFFF_0000) + 0x1_0000);
            double distance = Math.Abs((double)(float)rounded - value);
            double best = Math.Min(Math.Abs((double)below - value), Math.Abs((double)above - value));
            Assert.True(distance <= best, $"{value:R} rounded to {(float)rounded:R}, but {below:R} or {above:R} is nearer");
        }
    }

    [Fact]
    public void InfinitiesAndOverflow()
    {
        Assert.Equal(0x7F80, ((BFloat16)float.PositiveInfinity).Bits);
        Assert.Equal(0xFF80, ((BFloat16)float.NegativeInfinity).Bits);
        Assert.True(BFloat16.IsInfinity((BFloat16)float.MaxValue));
        Assert.Equal(0x7F7F, ((BFloat16)BitConverter.UInt32BitsToSingle(0x7F7F_7FFF)).Bits);
        Assert.Equal(float.PositiveInfinity, (float)(BFloat16)float.PositiveInfinity);
    }

    [Fact]
    public void NaNStaysNaNAndBecomesQuiet()
    {
        float signalling = BitConverter.UInt32BitsToSingle(0x7F80_0001);
        var fromSignalling = (BFloat16)signalling;
        Assert.True(BFloat16.IsNaN(fromSignalling));
        Assert.Equal(0x7FC0, fromSignalling.Bits);
        var negativeQuiet = (BFloat16)BitConverter.UInt32BitsToSingle(0xFFC1_2345);
        Assert.Equal(0xFFC1, negativeQuiet.Bits);
        Assert.True(float.IsNaN((BFloat16)float.NaN));
    }

    [Fact]
    public void SignedZerosAndSubnormalsAreKept()
    {
        Assert.Equal(0x0000, ((BFloat16)0f).Bits);
        Assert.Equal(0x8000, ((BFloat16)(-0f)).Bits);
        float smallestSubnormal = BitConverter.UInt32BitsToSingle(0x0001_0000);
        Assert.Equal(0x0001, ((BFloat16)smallestSubnormal).Bits);
        Assert.Equal(smallestSubnormal, (float)BFloat16.FromBits(0x0001));
    }
}
