using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Megatron's GPT model on one pipeline rank: vocab-parallel embedding, transformer layers, final norm, column-parallel
/// output layer (its own weight, or the embedding table when <see cref="GptConfig.ShareEmbeddingsAndOutputWeights"/>)
/// and vocab-parallel cross-entropy: the <see cref="GptStage"/> that holds every layer. The vocabulary is padded to a
/// multiple of TP; the padded rows of the embedding and output weights are never used (padded logits are masked).
/// Parameter names follow Megatron's state dict ("embedding.word_embeddings.weight",
/// "decoder.layers.0.mlp.linear_fc1.weight", "output_layer.weight"); the model's own name is empty.
/// </summary>
public sealed class GptModel : IParallelLayer
{
    private readonly GptStage _stage;

    public GptModel(ParallelContext context, GptConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(config.Layers);
        _stage = new GptStage(context, config, 0, 1, 0, config.Layers);
    }

    /// <summary>Empty: the model is the root of its parameters' names.</summary>
    public string Name => _stage.Name;

    public ParallelContext Context => _stage.Context;

    public IReadOnlyList<Parameter> Parameters => _stage.Parameters;

    public GptConfig Config => _stage.Config;

    /// <summary>The vocabulary rounded up to a multiple of TP: rows of the embedding and output weights.</summary>
    public int PaddedVocabSize => _stage.PaddedVocabSize;

    public VocabParallelEmbedding Embedding => _stage.Embedding!;

    public IReadOnlyList<TransformerLayer> Layers => _stage.Layers;

    public Norm FinalNorm => _stage.FinalNorm!;

    public ColumnParallelLinear OutputLayer => _stage.OutputLayer!;

    public VocabParallelCrossEntropy Loss => _stage.Loss!;

    /// <summary>
    /// Loss per token [tokens] (stats dtype; belongs to the model) of predicting <paramref name="targets"/> from
    /// <paramref name="ids"/> (both int32 [tokens], sequence-major, the same on every rank of the group).
    /// </summary>
    public Tensor Forward(Tensor ids, Tensor targets, TokenShape shape) => _stage.Forward(ids, targets, shape);

    /// <summary>
    /// This rank's logits [tokens, paddedVocab / TP] of <paramref name="ids"/> (see <see cref="GptStage.ForwardLogits"/>).
    /// </summary>
    public Tensor ForwardLogits(Tensor ids, TokenShape shape) => _stage.ForwardLogits(ids, shape);

    /// <summary>Accumulates every parameter's gradient of <paramref name="lossScale"/> times the summed per-token loss.</summary>
    public void Backward(double lossScale) => Backward(lossScale, deferWeightGradients: false);

    /// <summary>
    /// As <see cref="Backward(double)"/>; with <paramref name="deferWeightGradients"/> the weight gradients of the
    /// output layer, of every linear layer and of the embedding table are left for <see cref="BackwardWeights"/>
    /// (see <see cref="GptStage.Backward"/>).
    /// </summary>
    public void Backward(double lossScale, bool deferWeightGradients) => _stage.Backward(null, lossScale, deferWeightGradients);

    /// <summary>The weight gradients of the last deferred backward, in the fused backward's order. Throws when none is pending.</summary>
    public void BackwardWeights() => _stage.BackwardWeights();

    public void Dispose() => _stage.Dispose();
}
