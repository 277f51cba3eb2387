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
        if (Problem(sequence, batch) is { } problem)
        {
            throw new ArgumentException(problem);
        }
        Sequence = sequence;
        Batch = batch;
    }

    public int Sequence { get; }

    public int Batch { get; }

    public int Tokens => Sequence * Batch;

    /// <summary>Why <paramref name="sequence"/> x <paramref name="batch"/> cannot be a token count (it passes int's range); null when it can.</summary>
    public static string? Problem(int sequence, int batch) =>
        (long)sequence * batch > int.MaxValue
            ? $"sequence {sequence} x batch {batch} = {(long)sequence * batch} tokens, more than the {int.MaxValue} a token count can hold"
            : null;

    public override string ToString() => $"sequence {Sequence} x batch {Batch}";
}
