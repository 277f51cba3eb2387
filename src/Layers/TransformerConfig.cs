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
/// <param name="RotaryBase">Theta of the rotary embeddings (rope_theta).</param>
/// <param name="RopeScaling">Llama 3.x frequency scaling of the rotary embeddings, or none.</param>
/// <param name="KvChannels">Width of one attention head (Hugging Face's head_dim); HiddenSize / AttentionHeads when null.</param>
public sealed record TransformerConfig(
    int HiddenSize,
    int AttentionHeads,
    int QueryGroups,
    int FfnHiddenSize,
    MlpActivation Activation = MlpActivation.SwiGlu,
    NormKind Normalization = NormKind.RmsNorm,
    bool AddBiasLinear = false,
    double NormEpsilon = 1e-5,
    double RotaryBase = 10000,
    int? KvChannels = null,
    Llama3RopeScaling? RopeScaling = null)
{
    /// <summary>The rotary frequencies of the attention.</summary>
    public RotaryEmbedding Rotary => new(RotaryBase, RopeScaling);

    /// <summary>Width of one attention head.</summary>
    public int HeadDim => KvChannels ?? HiddenSize / AttentionHeads;
}
