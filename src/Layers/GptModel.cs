using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Megatron's GPT model: vocab-parallel embedding, transformer layers, final norm, column-parallel output
/// layer (its own weight, or the embedding table when <see cref="GptConfig.ShareEmbeddingsAndOutputWeights"/>)
/// and vocab-parallel cross-entropy. The vocabulary is padded
/// to a multiple of TP; the padded rows of the embedding and output weights are never used (padded logits are
/// masked). Parameter names follow Megatron's state dict ("embedding.word_embeddings.weight",
/// "decoder.layers.0.mlp.linear_fc1.weight", "output_layer.weight"); the model's own name is empty.
/// </summary>
public sealed class GptModel : IParallelLayer
{
    private readonly TransformerLayer[] _layers;
    private readonly DeferredWeightGradients _deferred = new("model");

    public GptModel(ParallelContext context, GptConfig config)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(config.Layers);
        Context = context;
        Config = config;
        var t = config.Transformer;
        bool sp = context.SequenceParallel;
        PaddedVocabSize = VocabParallelEmbedding.PaddedVocabSize(config.VocabSize, context.TensorParallelSize);
        Embedding = new VocabParallelEmbedding(context, "embedding.word_embeddings", PaddedVocabSize, t.HiddenSize, sp);
        _layers = Enumerable.Range(0, config.Layers)
            .Select(i => new TransformerLayer(context, $"decoder.layers.{i}", t))
            .ToArray();
        FinalNorm = new Norm(context, "decoder.final_layernorm", t.Normalization, t.HiddenSize, t.NormEpsilon, sp);
        OutputLayer = config.ShareEmbeddingsAndOutputWeights
            ? TiedOutputLayer(context, Embedding, sp)
            : new ColumnParallelLinear(context, "output_layer", t.HiddenSize, PaddedVocabSize, bias: false,
                gatherOutput: false, skipBiasAdd: false, sequenceParallel: sp);
        Loss = new VocabParallelCrossEntropy(context, "loss", PaddedVocabSize, config.VocabSize);
        Parameters = [.. Embedding.Parameters, .. _layers.SelectMany(l => l.Parameters), .. FinalNorm.Parameters, .. OutputLayer.Parameters];
    }

    /// <summary>
    /// The output layer of tied embeddings: logits = h E^T with the embedding table E itself (its weight and gradient,
    /// left out of the output layer's parameters), split over the vocabulary like the embedding.
    /// </summary>
    public static ColumnParallelLinear TiedOutputLayer(ParallelContext context, VocabParallelEmbedding embedding, bool sequenceParallel)
    {
        ArgumentNullException.ThrowIfNull(embedding);
        return new ColumnParallelLinear(context, "output_layer", embedding.HiddenSize, embedding.VocabSize, bias: false,
            gatherOutput: false, skipBiasAdd: false, sequenceParallel, LinearActivation.None, outputRowsOfRank: null,
            sharedWeight: embedding.Weight);
    }

    /// <summary>Empty: the model is the root of its parameters' names.</summary>
    public string Name => "";

    public ParallelContext Context { get; }

    public IReadOnlyList<Parameter> Parameters { get; }

    public GptConfig Config { get; }

    /// <summary>The vocabulary rounded up to a multiple of TP: rows of the embedding and output weights.</summary>
    public int PaddedVocabSize { get; }

    public VocabParallelEmbedding Embedding { get; }

    public IReadOnlyList<TransformerLayer> Layers => _layers;

    public Norm FinalNorm { get; }

    public ColumnParallelLinear OutputLayer { get; }

    public VocabParallelCrossEntropy Loss { get; }

    /// <summary>
    /// Loss per token [tokens] (stats dtype; belongs to the model) of predicting <paramref name="targets"/> from
    /// <paramref name="ids"/> (both int32 [tokens], sequence-major, the same on every rank of the group).
    /// </summary>
    public Tensor Forward(Tensor ids, Tensor targets, TokenShape shape) =>
        Loss.Forward(ForwardLogits(ids, shape), targets, shape.Tokens);

    /// <summary>
    /// This rank's logits [tokens, paddedVocab / TP] (vocabulary entries from rank * paddedVocab / TP; belongs to the
    /// model) of <paramref name="ids"/> (int32 [tokens], sequence-major, the same on every rank of the group).
    /// <see cref="Backward"/> needs <see cref="Loss"/>'s forward on them first, as <see cref="Forward"/> does; the loss
    /// overwrites the padded columns.
    /// </summary>
    public Tensor ForwardLogits(Tensor ids, TokenShape shape)
    {
        _deferred.CheckForward();
        int rows = Check.SequenceRows(shape, Context.SequenceParallel, Context.TensorParallelSize, "model");
        var x = Embedding.Forward(ids, shape);
        foreach (var layer in _layers)
        {
            x = layer.Forward(x, shape);
        }
        var h = FinalNorm.Forward(x, null, rows);
        return OutputLayer.Forward(h, shape);
    }

    /// <summary>Accumulates every parameter's gradient of <paramref name="lossScale"/> times the summed per-token loss.</summary>
    public void Backward(double lossScale) => Backward(lossScale, deferWeightGradients: false);

    /// <summary>
    /// As <see cref="Backward(double)"/>; with <paramref name="deferWeightGradients"/> the weight gradients of the
    /// output layer, of every linear layer and of the embedding table are left for <see cref="BackwardWeights"/>,
    /// while the loss gradient, the input gradients down to the embedding and the norms' weight gradients (one
    /// kernel pass with their input gradient) are computed now. With shared embedding and output weights both
    /// parts accumulate into the one gradient, the output layer's first, as in the fused backward.
    /// </summary>
    public void Backward(double lossScale, bool deferWeightGradients)
    {
        _deferred.CheckBackward();
        var dh = OutputLayer.Backward(Loss.Backward(lossScale), deferWeightGradients);
        var dx = FinalNorm.Backward(dh, null);
        for (int i = _layers.Length - 1; i >= 0; i--)
        {
            dx = _layers[i].Backward(dx, deferWeightGradients);
        }
        Embedding.Backward(dx, deferWeightGradients);
        if (deferWeightGradients)
        {
            _deferred.Defer();
        }
    }

    /// <summary>
    /// The weight gradients of the last deferred backward, in the fused backward's order: output layer, transformer
    /// layers from the last, embedding table. Throws when none is pending.
    /// </summary>
    public void BackwardWeights()
    {
        _deferred.Take();
        OutputLayer.BackwardWeights();
        for (int i = _layers.Length - 1; i >= 0; i--)
        {
            _layers[i].BackwardWeights();
        }
        Embedding.BackwardWeights();
    }

    public void Dispose()
    {
        Embedding.Dispose();
        foreach (var layer in _layers)
        {
            layer.Dispose();
        }
        FinalNorm.Dispose();
        OutputLayer.Dispose();
        Loss.Dispose();
    }
}
