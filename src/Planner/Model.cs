namespace ModelParallel.Planner;

/// <summary>The feed-forward block's activation, which fixes how many h x ffn matrices it holds.</summary>
public enum FfnActivation
{
    /// <summary>fc1 (h -> ffn), GeLU, fc2 (ffn -> h): two matrices (GPT).</summary>
    Gelu,

    /// <summary>gate and up (h -> ffn), silu(gate) * up, down (ffn -> h): three matrices (Llama).</summary>
    SwiGlu,
}

/// <summary>The normalisation before attention and before the MLP (pre-norm), and after the last layer.</summary>
public enum Normalization
{
    /// <summary>Weight only; keeps one fp32 statistic (rstd) per token.</summary>
    RmsNorm,

    /// <summary>Weight and bias; keeps two fp32 statistics (mean, rstd) per token.</summary>
    LayerNorm,
}

/// <summary>
/// A decoder-only transformer: <see cref="Layers"/> pre-norm layers of attention with
/// <see cref="Heads"/> query heads and <see cref="KvHeads"/> key/value heads (grouped-query attention when
/// fewer), and an MLP of width <see cref="Ffn"/>; token embeddings of <see cref="Vocab"/> rows; an output
/// projection to the vocabulary, tied to the embedding or not.
/// </summary>
public sealed record ModelSpec
{
    public required string Name { get; init; }

    public required int Layers { get; init; }

    public required int Hidden { get; init; }

    public required int Heads { get; init; }

    public required int KvHeads { get; init; }

    public required int Ffn { get; init; }

    public required FfnActivation Activation { get; init; }

    public required int Vocab { get; init; }

    /// <summary>Training sequence length in tokens.</summary>
    public required int SequenceLength { get; init; }

    public Normalization Norm { get; init; } = Normalization.RmsNorm;

    /// <summary>Whether the linear layers have biases (GPT) or not (Llama).</summary>
    public bool LinearBiases { get; init; }

    /// <summary>Whether the output projection shares the embedding matrix.</summary>
    public bool TiedEmbeddings { get; init; }

    /// <summary>Whether positions are a learned table of SequenceLength x Hidden (GPT) rather than rotary.</summary>
    public bool LearnedPositions { get; init; }

    /// <summary>Whether training applies dropout (attention probabilities, after attention, after the MLP, after the embedding).</summary>
    public bool Dropout { get; init; }

    public int HeadDim => Hidden / Heads;

    /// <summary>Width of K (and of V): kv heads x head dim.</summary>
    public int KvWidth => KvHeads * HeadDim;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first size that is not usable.</summary>
    public void Validate()
    {
        Positive(Layers, "layers");
        Positive(Hidden, "hidden");
        Positive(Heads, "heads");
        Positive(KvHeads, "kv heads");
        Positive(Ffn, "ffn");
        Positive(Vocab, "vocab");
        Positive(SequenceLength, "sequence length");
        if (Hidden % Heads != 0)
        {
            throw new ArgumentException($"hidden {Hidden} is not a multiple of the {Heads} heads");
        }
        if (Heads % KvHeads != 0)
        {
            throw new ArgumentException($"heads {Heads} is not a multiple of the {KvHeads} kv heads");
        }
    }

    private static void Positive(int value, string name)
    {
        if (value <= 0)
        {
            throw new ArgumentException($"model {name} must be positive (got {value})");
        }
    }
}
