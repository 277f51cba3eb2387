using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>Sizes and choices of a transformer layer (Megatron's TransformerConfig names).</summary>
/// <param name="HiddenSize">Model width.</param>
/// <param name="AttentionHeads">Query heads.</param>
/// <param name="QueryGroups">Key/value heads (grouped-query attention); equal to AttentionHeads for multi-head attention.</param>
/// <param name="FfnHiddenSize">MLP inner width.</param>
/// <param name="Activation">MLP nonlinearity.</param>
/// <param name="Normalization">RMSNorm or LayerNorm, applied before attention and before the MLP.</param>
/// <param name="AddBiasLinear">Whether the linear layers have biases.</param>
/// <param name="NormEpsilon">Epsilon of the norms.</param>
/// <param name="RotaryBase">Theta of the rotary embeddings.</param>
public sealed record TransformerConfig(
    int HiddenSize,
    int AttentionHeads,
    int QueryGroups,
    int FfnHiddenSize,
    MlpActivation Activation = MlpActivation.SwiGlu,
    NormKind Normalization = NormKind.RmsNorm,
    bool AddBiasLinear = false,
    float NormEpsilon = 1e-5f,
    float RotaryBase = 10000f);
