namespace ModelParallel.Layers;

/// <summary>
/// Sequence length and micro-batch size of one call. Activations are [tokens, hidden] with tokens
/// sequence-major (token t = s * Batch + b), so sequence parallelism splits dimension 0.
/// </summary>
public readonly record struct TokenShape
{
    public TokenShape(int sequence, int batch)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequence);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        Sequence = sequence;
        Batch = batch;
    }

    public int Sequence { get; }

    public int Batch { get; }

    public int Tokens => Sequence * Batch;

    public override string ToString() => $"sequence {Sequence} x batch {Batch}";
}
