namespace ModelParallel.Runtime;

/// <summary>
/// Llama 3.x frequency scaling of rotary embeddings, Hugging Face's <c>"rope_scaling": {"rope_type": "llama3",
/// "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}</c>. With
/// wavelength = 2 pi / invFreq, low = <see cref="OriginalMaxPositions"/> / <see cref="LowFreqFactor"/> and
/// high = <see cref="OriginalMaxPositions"/> / <see cref="HighFreqFactor"/>: wavelengths below high keep their
/// frequency, wavelengths above low are divided by <see cref="Factor"/>, and those in between are blended,
/// smooth = (<see cref="OriginalMaxPositions"/> / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor),
/// invFreq' = (1 - smooth) invFreq / factor + smooth invFreq.
/// </summary>
/// <param name="Factor">factor, at least 1 (8 for Llama 3.1).</param>
/// <param name="LowFreqFactor">low_freq_factor, positive (1 for Llama 3.1).</param>
/// <param name="HighFreqFactor">high_freq_factor, greater than <paramref name="LowFreqFactor"/> (4 for Llama 3.1).</param>
/// <param name="OriginalMaxPositions">original_max_position_embeddings, positive (8192 for Llama 3.1).</param>
public sealed record Llama3RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositions)
{
    // Get-only, so that neither the constructor nor `with` can make an invalid scaling.
    public double Factor { get; } = double.IsFinite(Factor) && Factor >= 1
        ? Factor
        : throw new ArgumentOutOfRangeException(nameof(Factor), Factor, $"Llama 3 rope factor {Factor} must be finite and at least 1");

    public double LowFreqFactor { get; } = double.IsFinite(LowFreqFactor) && LowFreqFactor > 0
        ? LowFreqFactor
        : throw new ArgumentOutOfRangeException(nameof(LowFreqFactor), LowFreqFactor,
            $"Llama 3 rope low_freq_factor {LowFreqFactor} must be positive and finite");

    public double HighFreqFactor { get; } = double.IsFinite(HighFreqFactor) && HighFreqFactor > LowFreqFactor
        ? HighFreqFactor
        : throw new ArgumentOutOfRangeException(nameof(HighFreqFactor), HighFreqFactor,
            $"Llama 3 rope high_freq_factor {HighFreqFactor} must be finite and greater than low_freq_factor {LowFreqFactor}");

    public int OriginalMaxPositions { get; } = OriginalMaxPositions > 0
        ? OriginalMaxPositions
        : throw new ArgumentOutOfRangeException(nameof(OriginalMaxPositions), OriginalMaxPositions,
            $"Llama 3 rope original_max_position_embeddings {OriginalMaxPositions} must be positive");

    /// <summary><paramref name="inverseFrequency"/> rescaled (see the type's summary), in double.</summary>
    public double Rescale(double inverseFrequency)
    {
        double wavelength = 2 * Math.PI / inverseFrequency;
        double lowWavelength = OriginalMaxPositions / LowFreqFactor;
        double highWavelength = OriginalMaxPositions / HighFreqFactor;
        if (wavelength < highWavelength)
        {
            return inverseFrequency;
        }
        if (wavelength > lowWavelength)
        {
            return inverseFrequency / Factor;
        }
        double smooth = (OriginalMaxPositions / wavelength - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
        return (1 - smooth) * inverseFrequency / Factor + smooth * inverseFrequency;
    }
}

/// <summary>
/// The frequencies of rotary embeddings: pair i of a head (elements i and i + headDim/2) turns by
/// position * <see cref="InverseFrequency"/>(i, headDim), theta^(-2i/headDim), rescaled by <see cref="Llama3"/> when given.
/// </summary>
/// <param name="Theta">The base (rope_theta): 10000 for Llama 2, 500000 for Llama 3.</param>
/// <param name="Llama3">Llama 3.x frequency scaling, or null for none.</param>
public readonly record struct RotaryEmbedding(double Theta, Llama3RopeScaling? Llama3 = null)
{
    /// <summary>theta^(-2 pair/headDim), rescaled by <see cref="Llama3"/> when given: the one host-side definition,
    /// in double (the CUDA kernel computes the same expression in double).</summary>
    public double InverseFrequency(int pair, int headDim)
    {
        if (headDim <= 0 || headDim % 2 != 0)
        {
            throw new ArgumentException($"headDim {headDim} must be positive and even (rotation pairs i and i + headDim/2)", nameof(headDim));
        }
        ArgumentOutOfRangeException.ThrowIfNegative(pair);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(pair, headDim / 2);
        double inverseFrequency = Math.Pow(Theta, -2.0 * pair / headDim);
        return Llama3 is null ? inverseFrequency : Llama3.Rescale(inverseFrequency);
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming <paramref name="paramName"/> unless theta is
    /// positive and finite (default(RotaryEmbedding) has theta 0). The scaling validates itself when constructed.</summary>
    public void Validate(string paramName)
    {
        if (!(Theta > 0) || !double.IsFinite(Theta))
        {
            throw new ArgumentOutOfRangeException(paramName, Theta, $"rotary theta {Theta} must be positive and finite");
        }
    }
}
