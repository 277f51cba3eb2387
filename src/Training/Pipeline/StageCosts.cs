namespace ModelParallel.Training.Pipeline;

/// <summary>
/// Time units the simulator charges per action of one stage on one micro-batch: <see cref="Forward"/> for F,
/// <see cref="Backward"/> for a whole B, <see cref="BackwardInput"/> and <see cref="BackwardWeight"/> for I and W
/// of a split backward, <see cref="P2P"/> for one point-to-point transfer (0 allowed: communication is free).
/// Compute costs must be positive and finite. The zero-bubble paper's setting is F = I = W = 1, B = 2.
/// </summary>
public sealed record StageCosts(double Forward, double Backward, double BackwardInput, double BackwardWeight, double P2P)
{
    /// <summary>F = I = W = 1, B = I + W = 2, free transfers: Qi et al.'s equal-cost setting.</summary>
    public static StageCosts ZeroBubblePaper { get; } = new(1, 2, 1, 1, 0);

    /// <summary>The cost of a compute action's kind.</summary>
    public double Of(ActionKind kind) => kind switch
    {
        ActionKind.Forward => Forward,
        ActionKind.Backward => Backward,
        ActionKind.BackwardInput => BackwardInput,
        ActionKind.BackwardWeight => BackwardWeight,
        _ => P2P,
    };

    internal void Check()
    {
        Positive(Forward, nameof(Forward));
        Positive(Backward, nameof(Backward));
        Positive(BackwardInput, nameof(BackwardInput));
        Positive(BackwardWeight, nameof(BackwardWeight));
        if (!(P2P >= 0) || double.IsInfinity(P2P))
        {
            throw new ArgumentException($"stage cost P2P {P2P}: must be finite and at least 0");
        }
    }

    private static void Positive(double value, string name)
    {
        if (!(value > 0) || double.IsInfinity(value))
        {
            throw new ArgumentException($"stage cost {name} {value}: must be finite and greater than 0");
        }
    }
}
