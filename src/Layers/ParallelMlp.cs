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
    public Tensor Backward(Tensor outputGrad)
    {
        var dh = Fc2.Backward(outputGrad);
        if (Activation == MlpActivation.SwiGlu)
        {
            var dGateUp = _activatedGrad.Get(Context.Backend.Compute, (long)_tokens * 2 * FfnPerPartition);
            Context.Kernels.SwigluBackward(dGateUp, dh, _fc1Output!, _tokens, FfnPerPartition);
            dh = dGateUp;
        }
        return Fc1.Backward(dh);
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
