using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Linear layer Y = X A^T + b with the weight A [output, input] split along its input dimension:
/// A = [A_1 ... A_p], X = [X_1 ... X_p], rank i holds A_i [output, input / p] and computes the partial
/// product X_i A_i^T. Forward: X is split along its last dimension unless inputIsParallel (it already is);
/// the partial products are summed through <see cref="ReduceFromTensorParallelRegion"/> (or reduce-scattered
/// to token shards with sequence parallelism); the bias, which every rank holds whole, is added once, after
/// the reduction. Backward: dY (all-gathered from token shards with sequence parallelism) gives
/// dX_i = dY A_i, dA_i += dY^T X_i and db += column sums of dY; no all-reduce.
/// </summary>
public sealed class RowParallelLinear : IParallelLayer
{
    private readonly Parameter[] _parameters;
    private readonly ScatterToTensorParallelRegion _scatterInput;
    private readonly ReduceFromTensorParallelRegion _reduceOutput;
    private readonly ReduceScatterToSequenceParallelRegion _reduceScatterOutput;
    private readonly TensorSlot _partial;
    private readonly TensorSlot _inputGrad;
    private readonly TensorSlot _biasGrad;
    private readonly DeferredWeightGradients _deferred;
    private Tensor? _input;
    private Tensor? _weightOutputGrad;
    private int _tokens;
    private int _outputRows;

    public RowParallelLinear(ParallelContext context, string name, int inputSize, int outputSize, bool bias = true,
        bool inputIsParallel = false, bool sequenceParallel = false)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outputSize);
        int size = context.TensorParallelSize;
        InputSizePerPartition = Check.Divide(inputSize, size, $"{name}: input size");
        if (sequenceParallel && !inputIsParallel)
        {
            throw new ArgumentException($"{name}: sequenceParallel needs inputIsParallel");
        }
        Context = context;
        Name = name;
        InputSize = inputSize;
        OutputSize = outputSize;
        InputIsParallel = inputIsParallel;
        SequenceParallel = sequenceParallel;
        Weight = Parameter.Create(context, $"{name}.weight", outputSize, inputSize, ParameterInit.Normal,
            r => Shard.ColumnBlock(outputSize, inputSize, r, size));
        Bias = bias
            ? Parameter.Create(context, $"{name}.bias", outputSize, 1, ParameterInit.Zeros, _ => Shard.Whole(outputSize, 1))
            : null;
        _parameters = Bias is null ? [Weight] : [Weight, Bias];
        _scatterInput = new ScatterToTensorParallelRegion(context, name);
        _reduceOutput = new ReduceFromTensorParallelRegion(context, name);
        _reduceScatterOutput = new ReduceScatterToSequenceParallelRegion(context, name);
        _partial = new TensorSlot(context.Backend);
        _inputGrad = new TensorSlot(context.Backend);
        _biasGrad = new TensorSlot(context.Backend);
        _deferred = new DeferredWeightGradients(name);
    }

    public string Name { get; }

    public ParallelContext Context { get; }

    public IReadOnlyList<Parameter> Parameters => _parameters;

    public int InputSize { get; }

    public int InputSizePerPartition { get; }

    public int OutputSize { get; }

    public bool InputIsParallel { get; }

    public bool SequenceParallel { get; }

    /// <summary>A: [output, input] full, [output, input / TP] on this rank.</summary>
    public Parameter Weight { get; }

    /// <summary>b: [output] on every rank; null without bias.</summary>
    public Parameter? Bias { get; }

    /// <summary>
    /// Y from X. X is [tokens, input / TP] when inputIsParallel, else [tokens, input]. Y is [tokens, output], or
    /// its token shard [tokens / TP, output] with sequence parallelism; it belongs to the layer and is valid
    /// until the next forward. X must stay unchanged until backward.
    /// </summary>
    public Tensor Forward(Tensor input, TokenShape shape)
    {
        _deferred.CheckForward();
        int size = Context.TensorParallelSize;
        int tokens = shape.Tokens;
        _outputRows = Check.SequenceRows(shape, SequenceParallel, size, Name);
        var compute = Context.Backend.Compute;
        Check.Matrix(input, compute, tokens, InputIsParallel ? InputSizePerPartition : InputSize, Name, "input");
        var x = InputIsParallel ? input : _scatterInput.Forward(input, tokens, InputSize);
        var partial = _partial.Get(compute, (long)tokens * OutputSize);
        Context.Kernels.Gemm(partial, x, Weight.Value, tokens, OutputSize, InputSizePerPartition, transA: false, transB: true);
        var y = SequenceParallel ? _reduceScatterOutput.Forward(partial, tokens, OutputSize) : _reduceOutput.Forward(partial);
        if (Bias is not null)
        {
            Context.Kernels.AddBias(y, Bias.Value, _outputRows, OutputSize);
        }
        _input = x;
        _tokens = tokens;
        return y;
    }

    /// <summary>
    /// dX from dY (shaped like forward's Y); accumulates the weight and bias gradients. dX is shaped like X,
    /// belongs to the layer and is valid until the next backward. The same as <see cref="Backward(Tensor, bool)"/>
    /// without deferring.
    /// </summary>
    public Tensor Backward(Tensor outputGrad) => Backward(outputGrad, deferWeightGradients: false);

    /// <summary>
    /// dX from dY, as <see cref="Backward(Tensor)"/>; with <paramref name="deferWeightGradients"/> the weight and bias
    /// gradients (dA_i += dY^T X_i and the column sums of dY, dY all-gathered with sequence parallelism) are left for
    /// <see cref="BackwardWeights"/>, which then accumulates exactly what the fused backward would have. Until then
    /// dY (the output gradient given here) and X (forward's input) must stay unchanged, and the layer accepts no
    /// forward or backward.
    /// </summary>
    public Tensor Backward(Tensor outputGrad, bool deferWeightGradients)
    {
        Check.ForwardDone(_input is not null, Name);
        _deferred.CheckBackward();
        var compute = Context.Backend.Compute;
        Check.Matrix(outputGrad, compute, _outputRows, OutputSize, Name, "output gradient");
        var dy = SequenceParallel ? _reduceScatterOutput.Backward(outputGrad) : _reduceOutput.Backward(outputGrad);
        var dx = _inputGrad.Get(compute, (long)_tokens * InputSizePerPartition);
        Context.Kernels.Gemm(dx, dy, Weight.Value, _tokens, InputSizePerPartition, OutputSize, transA: false, transB: false);
        var inputGrad = InputIsParallel ? dx : _scatterInput.Backward(dx);
        _weightOutputGrad = dy;
        _deferred.Defer();
        if (!deferWeightGradients)
        {
            BackwardWeights();
        }
        return inputGrad;
    }

    /// <summary>
    /// Accumulates the weight and bias gradients of the last backward that deferred them: dA_i += dY^T X_i and
    /// db += column sums of dY. Throws when no deferred backward is pending.
    /// </summary>
    public void BackwardWeights()
    {
        _deferred.Take();
        var dy = _weightOutputGrad!;
        _weightOutputGrad = null;
        LinearGradients.Accumulate(Context, Weight, Bias, _biasGrad, dy, _input!, _tokens, OutputSize, InputSizePerPartition);
    }

    public void Dispose()
    {
        foreach (var p in _parameters)
        {
            p.Dispose();
        }
        _scatterInput.Dispose();
        _reduceScatterOutput.Dispose();
        _partial.Dispose();
        _inputGrad.Dispose();
        _biasGrad.Dispose();
    }
}
