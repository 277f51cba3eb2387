using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// A pre-norm transformer layer: r = x + attention(norm1(x)); y = r + mlp(norm2(r)), the first residual add
/// fused into norm2. Activations are [tokens, hidden], or token shards [tokens / TP, hidden] with sequence
/// parallelism, where the norms and residual adds run on the shards. Forward issues 2 all-reduces and
/// backward 2 (with sequence parallelism 2 all-gathers and 2 reduce-scatters each way).
/// </summary>
public sealed class TransformerLayer : IParallelLayer
{
    private readonly TensorSlot _output;
    private readonly DeferredWeightGradients _deferred;
    private int _rows;

    public TransformerLayer(ParallelContext context, string name, TransformerConfig config)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(config);
        Context = context;
        Name = name;
        Config = config;
        bool sp = context.SequenceParallel;
        InputNorm = new Norm(context, $"{name}.input_layernorm", config.Normalization, config.HiddenSize, config.NormEpsilon, sp);
        Attention = new ParallelAttention(context, $"{name}.self_attention", config.HiddenSize, config.AttentionHeads,
            config.QueryGroups, config.AddBiasLinear, config.Rotary, config.KvChannels);
        PreMlpNorm = new Norm(context, $"{name}.pre_mlp_layernorm", config.Normalization, config.HiddenSize, config.NormEpsilon, sp);
        Mlp = new ParallelMlp(context, $"{name}.mlp", config.HiddenSize, config.FfnHiddenSize, config.Activation, config.AddBiasLinear);
        Parameters = [.. InputNorm.Parameters, .. Attention.Parameters, .. PreMlpNorm.Parameters, .. Mlp.Parameters];
        _output = new TensorSlot(context.Backend);
        _deferred = new DeferredWeightGradients(name);
    }

    /// <summary>
    /// The size checks of the constructor and of forward, from the numbers alone: throws <see cref="ArgumentException"/>
    /// with the same messages when <paramref name="tensorParallelSize"/> does not divide the heads, the ffn width, the
    /// key/value heads (or they it), or, with <paramref name="sequenceParallel"/>, the tokens of <paramref name="shape"/>.
    /// Costs no allocation, so a tool can check its arguments before it starts a rank.
    /// </summary>
    public static void Validate(string name, TransformerConfig config, int tensorParallelSize, bool sequenceParallel, TokenShape? shape = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tensorParallelSize);
        _ = new QueryGroupLayout($"{name}.self_attention", config.HiddenSize, config.AttentionHeads, config.QueryGroups, config.KvChannels,
            tensorParallelSize);
        Check.Divide(config.FfnHiddenSize, tensorParallelSize, $"{name}.mlp: ffn hidden size");
        if (shape is { } tokens)
        {
            Check.SequenceRows(tokens, sequenceParallel, tensorParallelSize, name);
        }
    }

    public string Name { get; }

    public ParallelContext Context { get; }

    public IReadOnlyList<Parameter> Parameters { get; }

    public TransformerConfig Config { get; }

    public Norm InputNorm { get; }

    public ParallelAttention Attention { get; }

    public Norm PreMlpNorm { get; }

    public ParallelMlp Mlp { get; }

    /// <summary>
    /// y from x, both [tokens, hidden] (token shards with sequence parallelism). y belongs to the layer; x must
    /// stay unchanged until backward.
    /// </summary>
    public Tensor Forward(Tensor input, TokenShape shape)
    {
        _deferred.CheckForward();
        int rows = Check.SequenceRows(shape, Context.SequenceParallel, Context.TensorParallelSize, Name);
        Check.Matrix(input, Context.Backend.Compute, rows, Config.HiddenSize, Name, "input");
        var h1 = InputNorm.Forward(input, null, rows);
        var a = Attention.Forward(h1, shape);
        var h2 = PreMlpNorm.Forward(a, input, rows);
        var m = Mlp.Forward(h2, shape);
        var y = _output.Get(Context.Backend.Compute, input.Count);
        Context.Kernels.Add(y, PreMlpNorm.Sum, m);
        _rows = rows;
        return y;
    }

    /// <summary>dx from dy (shaped like x); accumulates every parameter gradient. dx belongs to the layer.</summary>
    public Tensor Backward(Tensor outputGrad) => Backward(outputGrad, deferWeightGradients: false);

    /// <summary>
    /// dx from dy, as <see cref="Backward(Tensor)"/>; with <paramref name="deferWeightGradients"/> the linear layers'
    /// weight and bias gradients (MLP and attention) are left for <see cref="BackwardWeights"/>. The norms' weight
    /// (and bias) gradients are accumulated here all the same: their kernel computes them with dx in one pass over
    /// the rows. The output gradient given here (the MLP's dY) must stay unchanged until then.
    /// </summary>
    public Tensor Backward(Tensor outputGrad, bool deferWeightGradients)
    {
        Check.ForwardDone(_rows > 0, Name);
        _deferred.CheckBackward();
        Check.Matrix(outputGrad, Context.Backend.Compute, _rows, Config.HiddenSize, Name, "output gradient");
        var dh2 = Mlp.Backward(outputGrad, deferWeightGradients);
        var dr = PreMlpNorm.Backward(dh2, outputGrad);
        var dh1 = Attention.Backward(dr, deferWeightGradients);
        var dx = InputNorm.Backward(dh1, dr);
        if (deferWeightGradients)
        {
            _deferred.Defer();
        }
        return dx;
    }

    /// <summary>The MLP's then attention's weight and bias gradients of the last deferred backward; throws when none is pending.</summary>
    public void BackwardWeights()
    {
        _deferred.Take();
        Mlp.BackwardWeights();
        Attention.BackwardWeights();
    }

    public void Dispose()
    {
        InputNorm.Dispose();
        Attention.Dispose();
        PreMlpNorm.Dispose();
        Mlp.Dispose();
        _output.Dispose();
    }
}
