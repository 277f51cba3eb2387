using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>Rotary embedding (rotate-half) against the definition, with plain and Llama 3 scaled frequencies;
/// backward is the transpose of forward.</summary>
public sealed class CpuRopeTests
{
    private const int Seq = 5, Batch = 2, Heads = 3, HeadDim = 8, Offset = 3;
    private const double Theta = 10000;

    // Llama 3.1's rope_scaling: rope_theta 500000, factor 8, low_freq_factor 1, high_freq_factor 4,
    // original_max_position_embeddings 8192; head_dim 128.
    private const double Llama3Theta = 500000, Llama3Factor = 8, Llama3Low = 1, Llama3High = 4;
    private const int Llama3Original = 8192, Llama3HeadDim = 128;

    private static readonly Llama3RopeScaling Llama31 = new(Llama3Factor, Llama3Low, Llama3High, Llama3Original);

    /// <summary>Rotates pairs (i, i + headDim/2) of x [seq, vectors, headDim] by sign * (s + offset) * invFreq(i).</summary>
    private static double[] Rotate(double[] x, int seq, int headDim, int offset, Func<int, double> invFreq, double sign)
    {
        var y = new double[x.Length];
        int half = headDim / 2, vectors = x.Length / (seq * headDim);
        for (int s = 0; s < seq; s++)
        {
            for (int v = 0; v < vectors; v++)
            {
                int start = (s * vectors + v) * headDim;
                for (int i = 0; i < half; i++)
                {
                    double angle = sign * (s + offset) * invFreq(i);
                    double a = x[start + i], b = x[start + i + half];
                    y[start + i] = a * Math.Cos(angle) - b * Math.Sin(angle);
                    y[start + i + half] = b * Math.Cos(angle) + a * Math.Sin(angle);
                }
            }
        }
        return y;
    }

    private static double[] Rotate(double[] x, double sign) =>
        Rotate(x, Seq, HeadDim, Offset, i => Math.Pow(Theta, -2.0 * i / HeadDim), sign);

    /// <summary>Hugging Face's _compute_llama3_parameters, in its torch.where order, for Llama 3.1's values.</summary>
    private static double Llama31InverseFrequency(int i)
    {
        double inv = Math.Exp(-2.0 * i / Llama3HeadDim * Math.Log(Llama3Theta));
        double wavelen = 2 * Math.PI / inv;
        double lowWavelen = Llama3Original / Llama3Low, highWavelen = Llama3Original / Llama3High;
        double llama = wavelen > lowWavelen ? inv / Llama3Factor : inv;
        double smooth = (Llama3Original / wavelen - Llama3Low) / (Llama3High - Llama3Low);
        double smoothed = (1 - smooth) * llama / Llama3Factor + smooth * llama;
        bool medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
        return medium ? smoothed : llama;
    }

    [Theory]
    [MemberData(nameof(CpuTestKit.ComputeTypes), MemberType = typeof(CpuTestKit))]
    public void Rope_ForwardAndBackward_MatchReference(DType dtype)
    {
        var rng = TestRandom.Create();
        var x = CpuTestKit.Random(rng, dtype, Seq * Batch * Heads * HeadDim);
        var dy = CpuTestKit.Random(rng, dtype, x.Length);
        using var backend = new CpuBackend(dtype);
        var xt = TestTensors.Upload(backend, x);
        backend.Kernels.Rope(xt, Seq, Batch, Heads, HeadDim, new RotaryEmbedding(Theta), Offset, backward: false);
        var y = TestTensors.Download(xt);
        double tol = CpuTestKit.Tolerance(dtype);
        Numerics.AssertClose(y, Rotate(x, 1), tol, "RoPE forward");

        var dyt = TestTensors.Upload(backend, dy);
        backend.Kernels.Rope(dyt, Seq, Batch, Heads, HeadDim, new RotaryEmbedding(Theta), Offset, backward: true);
        var dx = TestTensors.Download(dyt);
        Numerics.AssertClose(dx, Rotate(dy, -1), tol, "RoPE backward");
        // Backward is the gradient of forward: <dy, R x> = <R^T dy, x>.
        double lhs = CpuReference.Dot(dy, Rotate(x, 1)), rhs = CpuReference.Dot(dx, x);
        Assert.True(Math.Abs(lhs - rhs) <= tol * Math.Abs(lhs) + 1e-6, $"<dy, Rx> = {lhs} but <R^T dy, x> = {rhs}");
    }

    [Fact]
    public void InverseFrequency_Llama3_MatchesTheClosedFormInEachBand()
    {
        var rotary = new RotaryEmbedding(Llama3Theta, Llama31);
        // wavelength 2 pi 500000^(i/64) against high = 8192/4 = 2048 and low = 8192/1 = 8192:
        // pairs 0..28 are below 2048 (unchanged), 29..34 in between (blended), 35..63 above 8192 (divided by 8).
        const double tol = 1e-14;

        // Pair 10: wavelength 2 pi 500000^(10/64) = 48.4, high frequency, unchanged.
        double inv10 = 1 / Math.Pow(500000, 10.0 / 64);
        AssertRelative(inv10, rotary.InverseFrequency(10, Llama3HeadDim), tol, "pair 10 (high band)");

        // Pair 32: inv = 500000^(-1/2), wavelength 2 pi sqrt(500000) = 4442.9, in between:
        // smooth = (8192 / 4442.9 - 1) / (4 - 1) = 0.2813, inv' = inv ((1 - smooth) / 8 + smooth).
        double inv32 = 1 / Math.Sqrt(500000);
        double smooth = (8192 / (2 * Math.PI * Math.Sqrt(500000)) - 1) / 3;
        Assert.InRange(smooth, 0.28, 0.282);
        AssertRelative(inv32 * ((1 - smooth) / 8 + smooth), rotary.InverseFrequency(32, Llama3HeadDim), tol, "pair 32 (blended)");

        // Pair 50: wavelength 2 pi 500000^(50/64) = 1.8e5, low frequency, divided by the factor 8.
        double inv50 = 1 / Math.Pow(500000, 50.0 / 64);
        AssertRelative(inv50 / 8, rotary.InverseFrequency(50, Llama3HeadDim), tol, "pair 50 (low band)");

        // The band edges: 28 unchanged, 29 and 34 blended (strictly between the two), 35 divided.
        var plain = new RotaryEmbedding(Llama3Theta);
        Assert.Equal(plain.InverseFrequency(28, Llama3HeadDim), rotary.InverseFrequency(28, Llama3HeadDim));
        foreach (int i in new[] { 29, 34 })
        {
            double p = plain.InverseFrequency(i, Llama3HeadDim), scaled = rotary.InverseFrequency(i, Llama3HeadDim);
            Assert.True(scaled > p / 8 && scaled < p, $"pair {i}: {scaled} is not between {p / 8} and {p}");
        }
        AssertRelative(plain.InverseFrequency(35, Llama3HeadDim) / 8, rotary.InverseFrequency(35, Llama3HeadDim), tol, "pair 35");

        // Every pair against Hugging Face's torch.where form.
        for (int i = 0; i < Llama3HeadDim / 2; i++)
        {
            AssertRelative(Llama31InverseFrequency(i), rotary.InverseFrequency(i, Llama3HeadDim), 1e-13, $"pair {i}");
        }
    }

    [Theory]
    [MemberData(nameof(CpuTestKit.ComputeTypes), MemberType = typeof(CpuTestKit))]
    public void Rope_Llama3_MatchesDirectRotationAndBackwardUndoesForward(DType dtype)
    {
        const int seq = 4, batch = 2, heads = 3, offset = 8000;
        var rng = TestRandom.Create();
        var x = CpuTestKit.Random(rng, dtype, seq * batch * heads * Llama3HeadDim);
        using var backend = new CpuBackend(dtype);
        var rotary = new RotaryEmbedding(Llama3Theta, Llama31);
        var xt = TestTensors.Upload(backend, x);
        backend.Kernels.Rope(xt, seq, batch, heads, Llama3HeadDim, rotary, offset, backward: false);
        var y = TestTensors.Download(xt);
        double tol = CpuTestKit.Tolerance(dtype);
        Numerics.AssertClose(y, Rotate(x, seq, Llama3HeadDim, offset, Llama31InverseFrequency, 1), tol, "Llama 3 RoPE forward");
        // The scaling changes the result: plain frequencies rotate differently.
        double unscaledError = Numerics.RelativeError(y, Rotate(x, seq, Llama3HeadDim, offset, i => Math.Pow(Llama3Theta, -2.0 * i / Llama3HeadDim), 1));
        Assert.True(unscaledError > 1e-2, $"scaled and plain rotations differ by only {unscaledError:E3}");

        backend.Kernels.Rope(xt, seq, batch, heads, Llama3HeadDim, rotary, offset, backward: true);
        Numerics.AssertClose(TestTensors.Download(xt), x, tol, "Llama 3 RoPE backward after forward");
    }

    [Fact]
    public void Llama3Scaling_InvalidValues_ThrowNamingThem()
    {
        // The message names the value (formatted as the message formats it, in the current culture).
        void Throws(string param, string value, Func<Llama3RopeScaling> make)
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(make);
            Assert.Equal(param, e.ParamName);
            Assert.Contains(value, e.Message);
        }
        Throws("Factor", $"factor {0.5} ", () => new Llama3RopeScaling(0.5, 1, 4, 8192));
        Throws("Factor", $"factor {double.NaN} ", () => new Llama3RopeScaling(double.NaN, 1, 4, 8192));
        Throws("Factor", $"factor {double.PositiveInfinity} ", () => new Llama3RopeScaling(double.PositiveInfinity, 1, 4, 8192));
        Throws("LowFreqFactor", "low_freq_factor 0 ", () => new Llama3RopeScaling(8, 0, 4, 8192));
        Throws("LowFreqFactor", $"low_freq_factor {-1} ", () => new Llama3RopeScaling(8, -1, 4, 8192));
        Throws("HighFreqFactor", "high_freq_factor 1 ", () => new Llama3RopeScaling(8, 1, 1, 8192));
        Throws("HighFreqFactor", $"high_freq_factor {0.5} ", () => new Llama3RopeScaling(8, 1, 0.5, 8192));
        Throws("OriginalMaxPositions", "original_max_position_embeddings 0 ", () => new Llama3RopeScaling(8, 1, 4, 0));
        // factor 1 is allowed and leaves every frequency as it was.
        var identity = new RotaryEmbedding(Llama3Theta, new Llama3RopeScaling(1, 1, 4, 8192));
        var plain = new RotaryEmbedding(Llama3Theta);
        for (int i = 0; i < Llama3HeadDim / 2; i++)
        {
            AssertRelative(plain.InverseFrequency(i, Llama3HeadDim), identity.InverseFrequency(i, Llama3HeadDim), 1e-15, $"factor 1, pair {i}");
        }
    }

    [Fact]
    public void Rope_BadSizes_ThrowNamingThem()
    {
        using var backend = new CpuBackend(DType.Float32);
        var t = backend.Allocate(DType.Float32, 30);
        var rotary = new RotaryEmbedding(Theta);
        Assert.Equal("headDim", Assert.Throws<ArgumentException>(() => backend.Kernels.Rope(t, 2, 1, 3, 5, rotary, 0, false)).ParamName);
        Assert.Equal("rotary", Assert.Throws<ArgumentOutOfRangeException>(
            () => backend.Kernels.Rope(t, 5, 1, 1, 6, new RotaryEmbedding(0), 0, false)).ParamName);
        Assert.Equal("rotary", Assert.Throws<ArgumentOutOfRangeException>(
            () => backend.Kernels.Rope(t, 5, 1, 1, 6, default, 0, false)).ParamName);
        Assert.Equal("rotary", Assert.Throws<ArgumentOutOfRangeException>(
            () => backend.Kernels.Rope(t, 5, 1, 1, 6, new RotaryEmbedding(double.PositiveInfinity), 0, false)).ParamName);
        Assert.Equal("positionOffset", Assert.Throws<ArgumentOutOfRangeException>(
            () => backend.Kernels.Rope(t, 5, 1, 1, 6, rotary, -1, false)).ParamName);
        Assert.Equal("x", Assert.Throws<ArgumentException>(() => backend.Kernels.Rope(t, 4, 1, 1, 6, rotary, 0, false)).ParamName);
        Assert.Equal("pair", Assert.Throws<ArgumentOutOfRangeException>(() => rotary.InverseFrequency(3, 6)).ParamName);
        Assert.Equal("headDim", Assert.Throws<ArgumentException>(() => rotary.InverseFrequency(0, 7)).ParamName);
    }

    private static void AssertRelative(double expected, double actual, double tol, string what) =>
        Assert.True(Math.Abs(actual - expected) <= tol * Math.Abs(expected), $"{what}: {actual:R} but expected {expected:R}");
}
