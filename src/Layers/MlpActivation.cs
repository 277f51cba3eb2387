namespace ModelParallel.Layers;

/// <summary>The nonlinearity of a <see cref="ParallelMlp"/>.</summary>
public enum MlpActivation
{
    /// <summary>gelu(X W1^T + b1), tanh form.</summary>
    Gelu,

    /// <summary>silu(X G^T + b_g) * (X U^T + b_u), gate G and up U fused into one weight [gate; up].</summary>
    SwiGlu,
}
