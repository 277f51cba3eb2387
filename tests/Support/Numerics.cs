namespace ModelParallel.Tests.Support;

/// <summary>Comparison and test-data helpers shared by every test.</summary>
public static class Numerics
{
    /// <summary>
    /// ||outp - reference|| / ||reference||. Any NaN or infinity in <paramref name="outp"/> gives
    /// +Inf, so that a broken output never passes a tolerance. A zero reference gives ||outp||.
    /// </summary>
    public static double RelativeError(ReadOnlySpan<double> outp, ReadOnlySpan<double> reference) =>
        RelativeErrorTo(outp, reference, reference);

    /// <summary>
    /// ||outp - reference|| / ||max(|scale|, |reference|)||: the error relative to the size of the terms an output
    /// sums (<paramref name="scale"/>), for sums whose terms may cancel. Any NaN or infinity in <paramref name="outp"/>
    /// gives +Inf; a zero scale and reference give ||outp - reference||.
    /// </summary>
    public static double RelativeErrorTo(ReadOnlySpan<double> outp, ReadOnlySpan<double> reference, ReadOnlySpan<double> scale)
    {
        if (outp.Length != reference.Length || scale.Length != reference.Length)
        {
            throw new ArgumentException(
                $"output has {outp.Length} elements, reference {reference.Length}, scale {scale.Length}");
        }
        double diff = 0, norm = 0;
        for (int i = 0; i < outp.Length; i++)
        {
            if (!double.IsFinite(outp[i]))
            {
                return double.PositiveInfinity;
            }
            double d = outp[i] - reference[i];
            diff += d * d;
            double size = Math.Max(Math.Abs(scale[i]), Math.Abs(reference[i]));
            norm += size * size;
        }
        if (!double.IsFinite(norm))
        {
            return double.PositiveInfinity;
        }
        return norm == 0 ? Math.Sqrt(diff) : Math.Sqrt(diff / norm);
    }

    /// <summary>Fails unless <see cref="RelativeErrorTo"/> is within <paramref name="tol"/>.</summary>
    public static void AssertCloseTo(double[] outp, double[] reference, double[] scale, double tol, string what)
    {
        double err = RelativeErrorTo(outp, reference, scale);
        Assert.True(err <= tol, $"{what}: error {err:E3} relative to the size of its terms exceeds {tol:E1} ({TestRandom.Describe()})");
    }

    /// <summary>Uniform values in [-scale, scale]; never all zero.</summary>
    public static double[] RandomArray(Random rng, int count, double scale = 1)
    {
        ArgumentNullException.ThrowIfNull(rng);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (!(scale > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "scale must be positive");
        }
        var values = new double[count];
        bool anyNonZero = count == 0;
        while (!anyNonZero)
        {
            for (int i = 0; i < count; i++)
            {
                values[i] = (2 * rng.NextDouble() - 1) * scale;
                anyNonZero |= values[i] != 0;
            }
        }
        return values;
    }

    /// <summary>Fails with the relative error, the tolerance and <paramref name="what"/> unless the error is within <paramref name="tol"/>.</summary>
    public static void AssertClose(double[] outp, double[] reference, double tol, string what)
    {
        double err = RelativeError(outp, reference);
        Assert.True(err <= tol, $"{what}: relative error {err:E3} exceeds {tol:E1} ({TestRandom.Describe()})");
    }
}
