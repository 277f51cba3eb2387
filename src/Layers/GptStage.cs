using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Consecutive layers of Megatron's GPT model, the whole model (<see cref="GptModel"/>) or one pipeline stage of it: the word embedding on the first stage, a run of transformer layers,
/// and the final norm, output layer and vocab-parallel loss on the last; parameters keep the one-rank model's names
/// ("decoder.layers.7..." keeps its global index), so weights and gradients compare by name. With tied embeddings the
/// last stage (when it is not also the first) computes logits with its own copy of the embedding table, named like it
/// ("embedding.word_embeddings.weight") so that it starts from and loads the same values; its gradient is summed
/// with the first stage's after backward (Megatron's embedding group).
/// <para>Full activation recomputation of the stage's first <see cref="RecomputedLayers"/> layers (Megatron's "block"
/// method): those layers are one set of objects shared by every replica of the stage, so their activations exist once;
/// forward keeps only the stage input and the recomputed block's output; backward runs the block's forward again for
/// its micro-batch, then its backward (always whole, never with deferred weight gradients, since the next micro-batch's
/// forward reuses the layers).</para>
/// </summary>
public sealed class GptStage : IParallelLayer
{
    private readonly TransformerLayer[] _layers;
    private readonly DeferredWeightGradients _deferred;
    private readonly bool _ownsRecomputed;
    private Tensor? _input;
    private Tensor? _blockInput;
    private Tensor? _checkpoint;
    private TokenShape _shape;

    /// <param name="recomputeLayers">How many of the stage's first layers are recomputed in backward.</param>
    /// <param name="sharedWith">The stage instance whose recomputed layers this replica uses (null for the first instance).</param>
    public GptStage(ParallelContext context, GptConfig config, int stage, int stages, int firstLayer, int layers,
        int recomputeLayers = 0, GptStage? sharedWith = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfNegative(stage);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(stage, stages);
        Context = context;
        Config = config;
        Stage = stage;
        IsFirst = stage == 0;
        IsLast = stage == stages - 1;
        Name = "";
        _deferred = new DeferredWeightGradients(stages == 1 ? "model" : $"stage {stage}");
        var t = config.Transformer;
        bool sp = context.SequenceParallel;
        PaddedVocabSize = VocabParallelEmbedding.PaddedVocabSize(config.VocabSize, context.TensorParallelSize);
        if (IsFirst)
        {
            Embedding = new VocabParallelEmbedding(context, "embedding.word_embeddings", PaddedVocabSize, t.HiddenSize, sp);
        }
        if (recomputeLayers < 0 || recomputeLayers > layers)
        {
            throw new ArgumentOutOfRangeException(nameof(recomputeLayers), recomputeLayers,
                $"stage {stage}: recomputed layers must be between 0 and its {layers} layers");
        }
        RecomputedLayers = recomputeLayers;
        _ownsRecomputed = sharedWith is null;
        _layers = Enumerable.Range(0, layers)
            .Select(i => i < recomputeLayers && sharedWith is not null
                ? sharedWith._layers[i]
                : new TransformerLayer(context, $"decoder.layers.{firstLayer + i}", t))
            .ToArray();
        if (IsLast)
        {
            FinalNorm = new Norm(context, "decoder.final_layernorm", t.Normalization, t.HiddenSize, t.NormEpsilon, sp);
            bool tied = config.ShareEmbeddingsAndOutputWeights;
            OutputLayer = tied && IsFirst
                ? new ColumnParallelLinear(context, "output_layer", t.HiddenSize, PaddedVocabSize, bias: false, gatherOutput: false,
                    skipBiasAdd: false, sp, LinearActivation.None, outputRowsOfRank: null, sharedWeight: Embedding!.Weight)
                : new ColumnParallelLinear(context, tied ? "embedding.word_embeddings" : "output_layer", t.HiddenSize, PaddedVocabSize,
                    bias: false, gatherOutput: false, skipBiasAdd: false, sequenceParallel: sp);
            Loss = new VocabParallelCrossEntropy(context, "loss", PaddedVocabSize, config.VocabSize);
        }
        Parameters = [.. Embedding?.Parameters ?? [], .. _layers.SelectMany(l => l.Parameters), .. FinalNorm?.Parameters ?? [],
            .. OutputLayer?.Parameters ?? []];
    }

    /// <summary>Empty: the stage's parameters keep the whole model's names.</summary>
    public string Name { get; }

    public ParallelContext Context { get; }

    public IReadOnlyList<Parameter> Parameters { get; }

    public GptConfig Config { get; }

    /// <summary>Global stage index (0 to ranks x virtual stages - 1).</summary>
    public int Stage { get; }

    public bool IsFirst { get; }

    public bool IsLast { get; }

    public int PaddedVocabSize { get; }

    public VocabParallelEmbedding? Embedding { get; }

    public IReadOnlyList<TransformerLayer> Layers => _layers;

    /// <summary>The stage's first layers whose activations are recomputed in backward.</summary>
    public int RecomputedLayers { get; }

    public Norm? FinalNorm { get; }

    public ColumnParallelLinear? OutputLayer { get; }

    public VocabParallelCrossEntropy? Loss { get; }

    /// <summary>The tied embedding copy of a last stage that is not the first (summed with the first stage's gradient).</summary>
    public Parameter? TiedOutputWeight => IsLast && !IsFirst && Config.ShareEmbeddingsAndOutputWeights ? OutputLayer!.Weight : null;

    /// <summary>The first stage's embedding table when embeddings are tied.</summary>
    public Parameter? TiedEmbeddingWeight => IsFirst && Config.ShareEmbeddingsAndOutputWeights ? Embedding!.Weight : null;

    /// <summary>
    /// The stage's forward: from token ids (int32 [tokens], first stage) or the previous stage's activations
    /// ([tokens, hidden], or the token shard with sequence parallelism) to activations for the next stage, or, on the
    /// last stage, the loss per token [tokens] (stats dtype) of <paramref name="targets"/>. The output belongs to the
    /// stage; the input must stay unchanged until backward.
    /// </summary>
    public Tensor Forward(Tensor input, Tensor? targets, TokenShape shape)
    {
        if (!IsLast)
        {
            return ForwardLayers(input, shape);
        }
        ArgumentNullException.ThrowIfNull(targets);
        return Loss!.Forward(ForwardLogits(input, shape), targets, shape.Tokens);
    }

    /// <summary>
    /// The last stage's logits [tokens, paddedVocab / TP] (vocabulary entries from rank * paddedVocab / TP; they belong
    /// to the stage). <see cref="Backward"/> needs <see cref="Loss"/>'s forward on them first, as <see cref="Forward"/>
    /// does; the loss overwrites the padded columns.
    /// </summary>
    public Tensor ForwardLogits(Tensor input, TokenShape shape)
    {
        if (!IsLast)
        {
            throw new InvalidOperationException($"stage {Stage} is not the last: it has no output layer");
        }
        var x = ForwardLayers(input, shape);
        int rows = checked((int)(x.Count / Config.Transformer.HiddenSize));
        return OutputLayer!.Forward(FinalNorm!.Forward(x, null, rows), shape);
    }

    /// <summary>Embedding (first stage) and transformer layers.</summary>
    private Tensor ForwardLayers(Tensor input, TokenShape shape)
    {
        ArgumentNullException.ThrowIfNull(input);
        _deferred.CheckForward();
        var x = IsFirst ? Embedding!.Forward(input, shape) : input;
        _blockInput = x;
        for (int i = 0; i < _layers.Length; i++)
        {
            x = _layers[i].Forward(x, shape);
            if (i == RecomputedLayers - 1)
            {
                x = Checkpoint(x);
            }
        }
        _input = input;
        _shape = shape;
        return x;
    }

    /// <summary>
    /// The stage's backward: from the gradient of its output (null on the last stage, whose loss gradient is
    /// <paramref name="lossScale"/> times the summed per-token loss) to the gradient of its input activations (null on the
    /// first stage); accumulates every parameter's gradient, or, with <paramref name="deferWeightGradients"/>, only the
    /// norms' and leaves the weight GEMMs to <see cref="BackwardWeights"/> (the zero-bubble schedules' B-input and
    /// B-weight). The result belongs to the stage.
    /// </summary>
    public Tensor? Backward(Tensor? outputGrad, double lossScale, bool deferWeightGradients = false)
    {
        if (_input is null)
        {
            throw new InvalidOperationException($"stage {Stage}: backward before forward");
        }
        _deferred.CheckBackward();
        Tensor dx;
        if (IsLast)
        {
            var dh = OutputLayer!.Backward(Loss!.Backward(lossScale), deferWeightGradients);
            dx = FinalNorm!.Backward(dh, null);
        }
        else
        {
            dx = outputGrad ?? throw new ArgumentNullException(nameof(outputGrad), $"stage {Stage}: a stage before the last needs its output gradient");
        }
        for (int i = _layers.Length - 1; i >= RecomputedLayers; i--)
        {
            dx = _layers[i].Backward(dx, deferWeightGradients);
        }
        if (RecomputedLayers > 0)
        {
            var x = _blockInput!;
            for (int i = 0; i < RecomputedLayers; i++)
            {
                x = _layers[i].Forward(x, _shape);
            }
            for (int i = RecomputedLayers - 1; i >= 0; i--)
            {
                dx = _layers[i].Backward(dx);
            }
        }
        if (deferWeightGradients)
        {
            _deferred.Defer();
        }
        if (IsFirst)
        {
            Embedding!.Backward(dx, deferWeightGradients);
            return null;
        }
        return dx;
    }

    /// <summary>The weight gradients a deferred <see cref="Backward"/> left, in the fused backward's order.</summary>
    public void BackwardWeights()
    {
        _deferred.Take();
        OutputLayer?.BackwardWeights();
        for (int i = _layers.Length - 1; i >= RecomputedLayers; i--)
        {
            _layers[i].BackwardWeights();
        }
        Embedding?.BackwardWeights();
    }

    /// <summary>A copy of the recomputed block's output that this instance keeps (the shared last layer's output is overwritten by the next micro-batch).</summary>
    private Tensor Checkpoint(Tensor x)
    {
        if (_checkpoint is null || _checkpoint.Count != x.Count || _checkpoint.DType != x.DType)
        {
            _checkpoint?.Dispose();
            _checkpoint = Context.Backend.Allocate(x.DType, x.Count);
        }
        Context.Kernels.Convert(_checkpoint, x);
        return _checkpoint;
    }

    public void Dispose()
    {
        Embedding?.Dispose();
        for (int i = 0; i < _layers.Length; i++)
        {
            if (i >= RecomputedLayers || _ownsRecomputed)
            {
                _layers[i].Dispose();
            }
        }
        _checkpoint?.Dispose();
        FinalNorm?.Dispose();
        OutputLayer?.Dispose();
        Loss?.Dispose();
    }
}
