using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Linear layer Y = X A^T + b with the weight A [output, input] split along its output dimension:
/// A = [A_1; ...; A_p], rank i holds A_i [output / p, input] and b_i, and computes Y_i = X A_i^T + b_i.
/// Forward: X enters through <see cref="CopyToTensorParallelRegion"/> (or, with sequence parallelism, the
/// token shards are all-gathered); Y_i stays split unless gatherOutput. Backward: dX_i = dY_i A_i is summed
/// over ranks (all-reduce, or reduce-scatter back to token shards with sequence parallelism); dA_i += dY_i^T X
/// and db_i += column sums of dY_i accumulate. With skipBiasAdd the bias is not added (the caller adds it,
/// reading <see cref="Bias"/>) but its gradient is still accumulated from dY.
/// </summary>
public sealed class ColumnParallelLinear : IParallelLayer
{
    private readonly Parameter[] _parameters;
    private readonly CopyToTensorParallelRegion _copyTo;
    private readonly GatherFromSequenceParallelRegion _gatherTokens;
    private readonly GatherFromTensorParallelRegion _gatherOutput;
    private readonly TensorSlot _output;
    private readonly TensorSlot _preActivation;
    private readonly TensorSlot _preActivationGrad;
    private readonly TensorSlot _inputGrad;
    private readonly TensorSlot _biasGrad;
    private readonly DeferredWeightGradients _deferred;
    private Tensor? _input;
    private Tensor? _weightOutputGrad;
    private int _tokens;

    public ColumnParallelLinear(ParallelContext context, string name, int inputSize, int outputSize, bool bias = true,
        bool gatherOutput = false, bool skipBiasAdd = false, bool sequenceParallel = false,
        LinearActivation activation = LinearActivation.None)
        : this(context, name, inputSize, outputSize, bias, gatherOutput, skipBiasAdd, sequenceParallel, activation, null)
    {
    }

    /// <param name="outputRowsOfRank">Which rows of the full weight each rank holds, for fused layouts
    /// (gate and up, QKV by query group, where replicated key/value heads give a rank more than output / TP rows);
    /// contiguous blocks when null.</param>
    /// <param name="sharedWeight">A weight owned by another layer, sharded in contiguous row blocks like this layer's
    /// (Megatron's output layer reusing the word embeddings): used instead of a weight of its own, left out of
    /// <see cref="Parameters"/> and not disposed; backward accumulates into its gradient.</param>
    internal ColumnParallelLinear(ParallelContext context, string name, int inputSize, int outputSize, bool bias,
        bool gatherOutput, bool skipBiasAdd, bool sequenceParallel, LinearActivation activation, Func<int, int[]>? outputRowsOfRank,
        Parameter? sharedWeight = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inputSize);
        int size = context.TensorParallelSize;
        Func<int, Shard> shardOf = outputRowsOfRank is null
            ? r => Shard.RowBlock(outputSize, inputSize, r, size)
            : r => new Shard(outputRowsOfRank(r), 0, inputSize);
        OutputSizePerPartition = outputRowsOfRank is null
            ? Check.Divide(outputSize, size, $"{name}: output size")
            : outputRowsOfRank(context.TensorParallelRank).Length;
        if (gatherOutput && sequenceParallel)
        {
            throw new ArgumentException($"{name}: gatherOutput and sequenceParallel cannot both be set");
        }
        if (skipBiasAdd && activation != LinearActivation.None)
        {
            throw new ArgumentException($"{name}: skipBiasAdd cannot be combined with the fused activation {activation}");
        }
        Context = context;
        Name = name;
        InputSize = inputSize;
        OutputSize = outputSize;
        GatherOutput = gatherOutput;
        SkipBiasAdd = skipBiasAdd;
        SequenceParallel = sequenceParallel;
        Activation = activation;
        if (sharedWeight is not null
            && (outputRowsOfRank is not null || sharedWeight.Rows != outputSize || sharedWeight.Columns != inputSize
                || sharedWeight.LocalCount != (long)OutputSizePerPartition * inputSize))
        {
            throw new ArgumentException(
                $"{name}: shared weight {sharedWeight.Name} [{sharedWeight.Rows}, {sharedWeight.Columns}] ({sharedWeight.LocalCount} local elements) " +
                $"does not match [{outputSize}, {inputSize}] split in row blocks over {size} ranks");
        }
        Weight = sharedWeight ?? Parameter.Create(context, $"{name}.weight", outputSize, inputSize, ParameterInit.Normal, shardOf);
        Bias = bias
            ? Parameter.Create(context, $"{name}.bias", outputSize, 1, ParameterInit.Zeros, r => shardOf(r) with { Columns = 1 })
            : null;
        Parameter[] owned = sharedWeight is null ? [Weight] : [];
        _parameters = Bias is null ? owned : [.. owned, Bias];
        _copyTo = new CopyToTensorParallelRegion(context, name);
        _gatherTokens = new GatherFromSequenceParallelRegion(context, name);
        _gatherOutput = new GatherFromTensorParallelRegion(context, name);
        var backend = context.Backend;
        _output = new TensorSlot(backend);
        _preActivation = new TensorSlot(backend);
        _preActivationGrad = new TensorSlot(backend);
        _inputGrad = new TensorSlot(backend);
        _biasGrad = new TensorSlot(backend);
        _deferred = new DeferredWeightGradients(name);
    }

    public string Name { get; }

    public ParallelContext Context { get; }

    public IReadOnlyList<Parameter> Parameters => _parameters;

    public int InputSize { get; }

    public int OutputSize { get; }

    /// <summary>Output columns this rank computes.</summary>
    public int OutputSizePerPartition { get; }

    public bool GatherOutput { get; }

    public bool SkipBiasAdd { get; }

    public bool SequenceParallel { get; }

    public LinearActivation Activation { get; }

    /// <summary>A: [output, input] full, [<see cref="OutputSizePerPartition"/>, input] on this rank.</summary>
    public Parameter Weight { get; }

    /// <summary>b: [output] full, [<see cref="OutputSizePerPartition"/>] on this rank; null without bias.</summary>
    public Parameter? Bias { get; }

    /// <summary>
    /// Y from X. X is [tokens, input], or its token shard [tokens / TP, input] with sequence parallelism.
    /// Y is [tokens, output / TP], or [tokens, output] with gatherOutput; it belongs to the layer and is
    /// valid until the next forward. X must stay unchanged until backward.
    /// </summary>
    public Tensor Forward(Tensor input, TokenShape shape)
    {
        _deferred.CheckForward();
        int size = Context.TensorParallelSize;
        int inputRows = Check.SequenceRows(shape, SequenceParallel, size, Name);
        Check.Matrix(input, Context.Backend.Compute, inputRows, InputSize, Name, "input");
        var x = SequenceParallel ? _gatherTokens.Forward(input, inputRows, InputSize) : _copyTo.Forward(input);
        int tokens = shape.Tokens;
        var kernels = Context.Kernels;
        var compute = Context.Backend.Compute;
        var y = _output.Get(compute, (long)tokens * OutputSizePerPartition);
        var bias = SkipBiasAdd ? null : Bias?.Value;
        if (Activation == LinearActivation.Gelu)
        {
            var pre = _preActivation.Get(compute, y.Count);
            kernels.Gemm(y, x, Weight.Value, tokens, OutputSizePerPartition, InputSize, transA: false, transB: true,
                epilogue: bias is null ? GemmEpilogue.Gelu : GemmEpilogue.BiasGelu, bias: bias, aux: pre);
        }
        else
        {
            kernels.Gemm(y, x, Weight.Value, tokens, OutputSizePerPartition, InputSize, transA: false, transB: true,
                epilogue: bias is null ? GemmEpilogue.None : GemmEpilogue.Bias, bias: bias);
        }
        _input = x;
        _tokens = tokens;
        return GatherOutput ? _gatherOutput.Forward(y, tokens, OutputSizePerPartition) : y;
    }

    /// <summary>
    /// dX from dY (shaped like forward's Y); accumulates the weight and bias gradients. dX is shaped like X,
    /// belongs to the layer and is valid until the next backward. The same as <see cref="Backward(Tensor, bool)"/>
    /// without deferring.
    /// </summary>
    public Tensor Backward(Tensor outputGrad) => Backward(outputGrad, deferWeightGradients: false);

    /// <summary>
    /// dX from dY, as <see cref="Backward(Tensor)"/>; with <paramref name="deferWeightGradients"/> the weight and bias
    /// gradients (dA_i += dY_i^T X and the column sums of dY_i, after the GeLU backward when fused) are left for
    /// <see cref="BackwardWeights"/>, which then accumulates exactly what the fused backward would have. Until then
    /// dY (the output gradient given here) and X (forward's input) must stay unchanged, and the layer accepts no
    /// forward or backward.
    /// </summary>
    public Tensor Backward(Tensor outputGrad, bool deferWeightGradients)
    {
        Check.ForwardDone(_input is not null, Name);
        _deferred.CheckBackward();
        var compute = Context.Backend.Compute;
        Check.Matrix(outputGrad, compute, _tokens, GatherOutput ? OutputSize : OutputSizePerPartition, Name, "output gradient");
        var dy = GatherOutput ? _gatherOutput.Backward(outputGrad) : outputGrad;
        var kernels = Context.Kernels;
        if (Activation == LinearActivation.Gelu)
        {
            var dPre = _preActivationGrad.Get(compute, dy.Count);
            kernels.GeluBackward(dPre, dy, _preActivation.Get(compute, dy.Count));
            dy = dPre;
        }
        var dx = _inputGrad.Get(compute, (long)_tokens * InputSize);
        kernels.Gemm(dx, dy, Weight.Value, _tokens, InputSize, OutputSizePerPartition, transA: false, transB: false);
        var inputGrad = SequenceParallel ? _gatherTokens.Backward(dx) : _copyTo.Backward(dx);
        _weightOutputGrad = dy;
        _deferred.Defer();
        if (!deferWeightGradients)
        {
            BackwardWeights();
        }
        return inputGrad;
    }

    /// <summary>
    /// Accumulates the weight and bias gradients of the last backward that deferred them: dA_i += dY_i^T X and
    /// db_i += column sums of dY_i. Throws when no deferred backward is pending.
    /// </summary>
    public void BackwardWeights()
    {
        _deferred.Take();
        var dy = _weightOutputGrad!;
        _weightOutputGrad = null;
        LinearGradients.Accumulate(Context, Weight, Bias, _biasGrad, dy, _input!, _tokens, OutputSizePerPartition, InputSize);
    }

    public void Dispose()
    {
        foreach (var p in _parameters)
        {
            p.Dispose();
        }
        _gatherTokens.Dispose();
        _gatherOutput.Dispose();
        _output.Dispose();
        _preActivation.Dispose();
        _preActivationGrad.Dispose();
        _inputGrad.Dispose();
        _biasGrad.Dispose();
    }
}
