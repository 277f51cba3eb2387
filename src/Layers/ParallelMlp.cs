using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Megatron's MLP: linear_fc1 (column-parallel, hidden to ffn, or to gate and up for SwiGLU) then the
/// activation on the local ffn / TP columns, then linear_fc2 (row-parallel, ffn to hidden, input already
/// parallel). Forward issues exactly one all-reduce (fc2's reduction) and backward one (fc1's input
/// gradient); with sequence parallelism an all-gather and a reduce-scatter each way instead.
/// For SwiGLU the full fc1 weight is [gate (ffn rows); up (ffn rows)]; rank i holds rows i of both halves.
/// </summary>
public sealed class ParallelMlp : IParallelLayer
{
    private readonly TensorSlot _activated;
    private readonly TensorSlot _activatedGrad;
    private readonly DeferredWeightGradients _deferred;
    private Tensor? _fc1Output;
    private int _tokens;

    public ParallelMlp(ParallelContext context, string name, int hiddenSize, int ffnHiddenSize, MlpActivation activation, bool bias)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(name);
        int size = context.TensorParallelSize;
        FfnPerPartition = Check.Divide(ffnHiddenSize, size, $"{name}: ffn hidden size");
        Context = context;
        Name = name;
        HiddenSize = hiddenSize;
        FfnHiddenSize = ffnHiddenSize;
        Activation = activation;
        bool sp = context.SequenceParallel;
        Fc1 = activation switch
        {
            MlpActivation.Gelu => new ColumnParallelLinear(context, $"{name}.linear_fc1", hiddenSize, ffnHiddenSize, bias,
                gatherOutput: false, skipBiasAdd: false, sequenceParallel: sp, activation: LinearActivation.Gelu),
            MlpActivation.SwiGlu => new ColumnParallelLinear(context, $"{name}.linear_fc1", hiddenSize, 2 * ffnHiddenSize, bias,
                gatherOutput: false, skipBiasAdd: false, sequenceParallel: sp, LinearActivation.None,
                r => GateUpRows(ffnHiddenSize, r, size)),
            _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "unknown MLP activation"),
        };
        Fc2 = new RowParallelLinear(context, $"{name}.linear_fc2", ffnHiddenSize, hiddenSize, bias, inputIsParallel: true, sequenceParallel: sp);
        Parameters = [.. Fc1.Parameters, .. Fc2.Parameters];
        _activated = new TensorSlot(context.Backend);
        _activatedGrad = new TensorSlot(context.Backend);
        _deferred = new DeferredWeightGradients(name);
    }

    public string Name { get; }

    public ParallelContext Context { get; }

    public IReadOnlyList<Parameter> Parameters { get; }

    public int HiddenSize { get; }

    public int FfnHiddenSize { get; }

    public int FfnPerPartition { get; }

    public MlpActivation Activation { get; }

    public ColumnParallelLinear Fc1 { get; }

    public RowParallelLinear Fc2 { get; }

    /// <summary>[tokens, hidden] (token shard with sequence parallelism) to the same shape; the output belongs to the layer.</summary>
    public Tensor Forward(Tensor input, TokenShape shape)
    {
        _deferred.CheckForward();
        var h = Fc1.Forward(input, shape);
        if (Activation == MlpActivation.SwiGlu)
        {
            _fc1Output = h;
            h = _activated.Get(Context.Backend.Compute, (long)shape.Tokens * FfnPerPartition);
            Context.Kernels.SwigluForward(h, _fc1Output, shape.Tokens, FfnPerPartition);
        }
        _tokens = shape.Tokens;
        return Fc2.Forward(h, shape);
    }

    /// <summary>Input gradient from output gradient; accumulates fc1's and fc2's gradients.</summary>
    public Tensor Backward(Tensor outputGrad) => Backward(outputGrad, deferWeightGradients: false);

    /// <summary>
    /// Input gradient from output gradient, as <see cref="Backward(Tensor)"/>; with <paramref name="deferWeightGradients"/>
    /// fc2's and fc1's weight and bias gradients are left for <see cref="BackwardWeights"/>. fc1's dY is the
    /// activation backward's output (the SwiGLU gradient of gate and up, or the GeLU gradient inside fc1), kept in
    /// the layer's buffers, which no other call writes until then; the output gradient given here (fc2's dY) must
    /// stay unchanged.
    /// </summary>
    public Tensor Backward(Tensor outputGrad, bool deferWeightGradients)
    {
        _deferred.CheckBackward();
        var dh = Fc2.Backward(outputGrad, deferWeightGradients);
        if (Activation == MlpActivation.SwiGlu)
        {
            var dGateUp = _activatedGrad.Get(Context.Backend.Compute, (long)_tokens * 2 * FfnPerPartition);
            Context.Kernels.SwigluBackward(dGateUp, dh, _fc1Output!, _tokens, FfnPerPartition);
            dh = dGateUp;
        }
        var dx = Fc1.Backward(dh, deferWeightGradients);
        if (deferWeightGradients)
        {
            _deferred.Defer();
        }
        return dx;
    }

    /// <summary>fc2's then fc1's weight and bias gradients of the last deferred backward; throws when none is pending.</summary>
    public void BackwardWeights()
    {
        _deferred.Take();
        Fc2.BackwardWeights();
        Fc1.BackwardWeights();
    }

    /// <summary>Rows of the fused [gate; up] weight that rank <paramref name="rank"/> holds: its block of each half.</summary>
    private static int[] GateUpRows(int ffn, int rank, int size)
    {
        int local = ffn / size;
        return [.. Enumerable.Range(rank * local, local), .. Enumerable.Range(ffn + rank * local, local)];
    }

    public void Dispose()
    {
        Fc1.Dispose();
        Fc2.Dispose();
        _activated.Dispose();
        _activatedGrad.Dispose();
    }
}
