using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Cross-entropy over logits split along the vocabulary: rank i holds logits [tokens, paddedVocab / TP] for
/// vocabulary entries starting at i * paddedVocab / TP. Forward: the row maximum is all-reduced (max), then the
/// sums of exponentials and the target logits (zero on ranks whose range misses the target) are all-reduced
/// (sum) together, and loss = log(sum exp) + max - target logit per token: two all-reduces. Backward:
/// d logits = scale * (softmax - onehot(target)) from what forward kept, with no communication.
/// Columns of the padding (entries at or past the real vocabulary size) are masked out of the softmax.
/// </summary>
public sealed class VocabParallelCrossEntropy : IParallelLayer
{
    /// <summary>What padded logits are overwritten with: exp of it underflows to 0 in every dtype.</summary>
    private const double MaskedLogit = -1e30;

    private readonly TensorSlot _rowMax;
    private readonly TensorSlot _sums;
    private readonly TensorSlot _loss;
    private readonly TensorSlot _mask;
    private readonly TensorSlot _logitsGrad;
    private Saved? _saved;

    /// <param name="paddedVocabSize">Logit columns in all, divisible by TP.</param>
    /// <param name="vocabSize">Real vocabulary entries; columns from here on are padding.</param>
    public VocabParallelCrossEntropy(ParallelContext context, string name, int paddedVocabSize, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(name);
        VocabPerPartition = Check.Divide(paddedVocabSize, context.TensorParallelSize, $"{name}: padded vocabulary size");
        if (vocabSize <= 0 || vocabSize > paddedVocabSize)
        {
            throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, $"{name}: vocabulary size must be in [1, padded size {paddedVocabSize}]");
        }
        Context = context;
        Name = name;
        PaddedVocabSize = paddedVocabSize;
        VocabSize = vocabSize;
        VocabStart = context.TensorParallelRank * VocabPerPartition;
        ValidColumns = Math.Clamp(vocabSize - VocabStart, 0, VocabPerPartition);
        var backend = context.Backend;
        _rowMax = new TensorSlot(backend);
        _sums = new TensorSlot(backend);
        _loss = new TensorSlot(backend);
        _mask = new TensorSlot(backend);
        _logitsGrad = new TensorSlot(backend);
    }

    public string Name { get; }

    public ParallelContext Context { get; }

    public IReadOnlyList<Parameter> Parameters { get; } = [];

    public int PaddedVocabSize { get; }

    public int VocabSize { get; }

    public int VocabPerPartition { get; }

    /// <summary>First vocabulary entry of this rank's logit columns.</summary>
    public int VocabStart { get; }

    /// <summary>Logit columns of this rank that are real vocabulary entries, not padding.</summary>
    public int ValidColumns { get; }

    /// <summary>
    /// Loss per token [tokens] (stats dtype; belongs to the layer) from this rank's logits [tokens, paddedVocab / TP]
    /// (compute dtype; padded columns are overwritten) and targets (int32 [tokens], each in [0, vocab)). Logits and
    /// targets must stay unchanged until backward.
    /// </summary>
    public Tensor Forward(Tensor logits, Tensor targets, int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokens);
        var backend = Context.Backend;
        Check.Matrix(logits, backend.Compute, tokens, VocabPerPartition, Name, "logits");
        Check.Matrix(targets, DType.Int32, tokens, 1, Name, "targets");
        var kernels = Context.Kernels;
        if (ValidColumns < VocabPerPartition)
        {
            int padding = VocabPerPartition - ValidColumns;
            var mask = _mask.Get(backend.Compute, (long)tokens * padding);
            kernels.Fill(mask, MaskedLogit);
            kernels.Copy2D(LastDimension.Offset(logits, ValidColumns), VocabPerPartition, mask, padding, tokens, padding);
        }
        var rowMax = _rowMax.Get(backend.StatsType, tokens);
        kernels.CrossEntropyRowMax(rowMax, logits, tokens, VocabPerPartition);
        if (Context.TensorParallelSize > 1)
        {
            Context.AllReduce(Context.TensorParallel, rowMax, ReduceOp.Max, Name, CommunicationPhase.Forward);
        }
        var sums = _sums.Get(backend.StatsType, 2L * tokens);
        var sumExp = sums.Slice(0, tokens);
        var targetLogit = sums.Slice(tokens, tokens);
        kernels.CrossEntropySumExp(sumExp, targetLogit, logits, rowMax, targets, tokens, VocabPerPartition, VocabStart);
        if (Context.TensorParallelSize > 1)
        {
            Context.AllReduce(Context.TensorParallel, sums, ReduceOp.Sum, Name, CommunicationPhase.Forward);
        }
        var loss = _loss.Get(backend.StatsType, tokens);
        kernels.CrossEntropyLoss(loss, rowMax, sumExp, targetLogit, tokens);
        _saved = new Saved(logits, targets, rowMax, sumExp, tokens);
        return loss;
    }

    /// <summary>
    /// The gradient of <paramref name="scale"/> times the sum of the per-token losses with respect to this rank's
    /// logits [tokens, paddedVocab / TP] (belongs to the layer). scale = 1 / tokens gives the mean loss's gradient.
    /// </summary>
    public Tensor Backward(double scale)
    {
        Check.ForwardDone(_saved is not null, Name);
        var (logits, targets, rowMax, sumExp, tokens) = _saved!;
        var dLogits = _logitsGrad.Get(Context.Backend.Compute, logits.Count);
        Context.Kernels.CrossEntropyBackward(dLogits, logits, rowMax, sumExp, targets, tokens, VocabPerPartition, VocabStart, scale);
        return dLogits;
    }

    /// <summary>What backward needs from forward.</summary>
    private sealed record Saved(Tensor Logits, Tensor Targets, Tensor RowMax, Tensor SumExp, int Tokens);

    public void Dispose()
    {
        _rowMax.Dispose();
        _sums.Dispose();
        _loss.Dispose();
        _mask.Dispose();
        _logitsGrad.Dispose();
    }
}
