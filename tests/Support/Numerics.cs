namespace ModelParallel.Tests.Support;

/// <summary>Comparison and test-data helpers shared by every test.</summary>
public static class Numerics
{
    /// <summary>
    /// ||outp - reference|| / ||reference||. Any NaN or infinity in <paramref name="outp"/> gives
    /// +Inf, so that a broken output never passes a tolerance. A zero reference gives ||outp||.
    /// </summary>
    public static double RelativeError(ReadOnlySpan<double> outp, ReadOnlySpan<double> reference)
    {
        if (outp.Length != reference.Length)
        {
            throw new ArgumentException($"output has {outp.Length} elements, reference has {reference.Length}");
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
            norm += reference[i] * reference[i];
        }
        if (!double.IsFinite(norm))
        {
            return double.PositiveInfinity;
        }
        return norm == 0 ? Math.Sqrt(diff) : Math.Sqrt(diff / norm);
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
