namespace ModelParallel.Tests.Support;

/// <summary>The error measures every numerical test relies on.</summary>
public sealed class NumericsTests
{
    [Fact]
    public void RelativeErrorIsTheNormOfTheDifferenceOverTheNormOfTheReference()
    {
        Assert.Equal(0.1, Numerics.RelativeError([3.3, 4.4], [3, 4]), 12);
        Assert.Equal(0.5, Numerics.RelativeError([0.3, 0.4], [0, 0]), 12);
    }

    [Fact]
    public void ABrokenOutputNeverPasses()
    {
        Assert.Equal(double.PositiveInfinity, Numerics.RelativeError([1, double.NaN], [1, 2]));
        Assert.Equal(double.PositiveInfinity, Numerics.RelativeErrorTo([1, double.PositiveInfinity], [1, 2], [5, 5]));
    }

    [Fact]
    public void ErrorOfACancellingSumIsMeasuredAgainstItsTerms()
    {
        // 1 + (-0.999) = 1e-3, computed with an error of 1e-5: 1e-2 of the sum, 5e-6 of the terms (|1| + |-0.999|).
        double[] outp = [1e-3 + 1e-5], reference = [1e-3], terms = [1.999];
        Assert.Equal(1e-2, Numerics.RelativeError(outp, reference), 9);
        Assert.Equal(1e-5 / 1.999, Numerics.RelativeErrorTo(outp, reference, terms), 12);
    }

    [Fact]
    public void AScaleSmallerThanTheReferenceCountsAsTheReference()
    {
        Assert.Equal(Numerics.RelativeError([3.3, 4], [3, 4]), Numerics.RelativeErrorTo([3.3, 4], [3, 4], [0, 1]), 15);
    }

    [Fact]
    public void MismatchedLengthsAreRefusedWithTheirSizes()
    {
        var e = Assert.Throws<ArgumentException>(() => Numerics.RelativeErrorTo([1, 2], [1, 2], [1]));
        Assert.Contains("scale 1", e.Message);
    }
}
