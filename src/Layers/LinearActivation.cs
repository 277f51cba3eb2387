namespace ModelParallel.Layers;

/// <summary>An activation a column-parallel linear layer fuses into its GEMM epilogue.</summary>
public enum LinearActivation
{
    None,

    /// <summary>GeLU, tanh form: Y = gelu(X W^T + b), the bias and GeLU fused into the GEMM.</summary>
    Gelu,
}
