using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Token embedding with the table [vocab, hidden] split along the vocabulary: rank i holds rows
/// [i * vocab / TP, (i + 1) * vocab / TP). Forward: each rank looks up the ids in its range and writes zeros
/// for the others, then the partial embeddings are summed (all-reduce, or reduce-scatter to token shards with
/// sequence parallelism). Backward: the output gradient (all-gathered from token shards with sequence
/// parallelism) accumulates into the rows of this rank's ids; no all-reduce. The vocabulary must be divisible
/// by TP: pad it with <see cref="PaddedVocabSize"/>.
/// </summary>
public sealed class VocabParallelEmbedding : IParallelLayer
{
    private readonly ReduceFromTensorParallelRegion _reduce;
    private readonly ReduceScatterToSequenceParallelRegion _reduceScatter;
    private readonly TensorSlot _output;
    private readonly DeferredWeightGradients _deferred;
    private Tensor? _ids;
    private Tensor? _weightOutputGrad;
    private int _tokens;
    private int _outputRows;

    public VocabParallelEmbedding(ParallelContext context, string name, int vocabSize, int hiddenSize, bool sequenceParallel)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(hiddenSize);
        int size = context.TensorParallelSize;
        VocabPerPartition = Check.Divide(vocabSize, size, $"{name}: vocabulary size");
        Context = context;
        Name = name;
        VocabSize = vocabSize;
        HiddenSize = hiddenSize;
        SequenceParallel = sequenceParallel;
        VocabStart = context.TensorParallelRank * VocabPerPartition;
        Weight = Parameter.Create(context, $"{name}.weight", vocabSize, hiddenSize, ParameterInit.Normal,
            r => Shard.RowBlock(vocabSize, hiddenSize, r, size));
        Parameters = [Weight];
        _reduce = new ReduceFromTensorParallelRegion(context, name);
        _reduceScatter = new ReduceScatterToSequenceParallelRegion(context, name);
        _output = new TensorSlot(context.Backend);
        _deferred = new DeferredWeightGradients(name);
    }

    /// <summary>The smallest multiple of <paramref name="tensorParallelSize"/> that holds <paramref name="vocabSize"/> entries.</summary>
    public static int PaddedVocabSize(int vocabSize, int tensorParallelSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tensorParallelSize);
        return (vocabSize + tensorParallelSize - 1) / tensorParallelSize * tensorParallelSize;
    }

    public string Name { get; }

    public ParallelContext Context { get; }

    public IReadOnlyList<Parameter> Parameters { get; }

    public int VocabSize { get; }

    public int VocabPerPartition { get; }

    /// <summary>First vocabulary row this rank holds.</summary>
    public int VocabStart { get; }

    public int HiddenSize { get; }

    public bool SequenceParallel { get; }

    /// <summary>The table [vocab, hidden]; [vocab / TP, hidden] on this rank.</summary>
    public Parameter Weight { get; }

    /// <summary>
    /// Embeddings [tokens, hidden] (the token shard [tokens / TP, hidden] with sequence parallelism) of
    /// <paramref name="ids"/> (int32 [tokens], each in [0, vocab)). The output belongs to the layer; ids must stay
    /// unchanged until backward.
    /// </summary>
    public Tensor Forward(Tensor ids, TokenShape shape)
    {
        _deferred.CheckForward();
        int tokens = shape.Tokens;
        int outputRows = Check.SequenceRows(shape, SequenceParallel, Context.TensorParallelSize, Name);
        Check.Matrix(ids, DType.Int32, tokens, 1, Name, "ids");
        var partial = _output.Get(Context.Backend.Compute, (long)tokens * HiddenSize);
        Context.Kernels.EmbeddingForward(partial, ids, Weight.Value, tokens, HiddenSize, VocabStart, VocabPerPartition);
        _ids = ids;
        _tokens = tokens;
        _outputRows = outputRows;
        return SequenceParallel ? _reduceScatter.Forward(partial, tokens, HiddenSize) : _reduce.Forward(partial);
    }

    /// <summary>Accumulates the table gradient from the output gradient (shaped like forward's output).</summary>
    public void Backward(Tensor outputGrad) => Backward(outputGrad, deferWeightGradients: false);

    /// <summary>
    /// As <see cref="Backward(Tensor)"/>; with <paramref name="deferWeightGradients"/> only the output gradient's
    /// communication (the all-gather from token shards with sequence parallelism) runs now and the accumulation into
    /// the table gradient is left for <see cref="BackwardWeights"/>. Until then the output gradient given here and
    /// the ids must stay unchanged, and the layer accepts no forward or backward.
    /// </summary>
    public void Backward(Tensor outputGrad, bool deferWeightGradients)
    {
        Check.ForwardDone(_ids is not null, Name);
        _deferred.CheckBackward();
        Check.Matrix(outputGrad, Context.Backend.Compute, _outputRows, HiddenSize, Name, "output gradient");
        _weightOutputGrad = SequenceParallel ? _reduceScatter.Backward(outputGrad) : _reduce.Backward(outputGrad);
        _deferred.Defer();
        if (!deferWeightGradients)
        {
            BackwardWeights();
        }
    }

    /// <summary>Accumulates the table gradient of the last backward that deferred it; throws when none is pending.</summary>
    public void BackwardWeights()
    {
        _deferred.Take();
        var dy = _weightOutputGrad!;
        _weightOutputGrad = null;
        Context.Kernels.EmbeddingBackward(Weight.Grad, dy, _ids!, _tokens, HiddenSize, VocabStart, VocabPerPartition);
    }

    public void Dispose()
    {
        Weight.Dispose();
        _reduceScatter.Dispose();
        _output.Dispose();
    }
}
