using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Megatron's self-attention: linear_qkv (column-parallel, the fused QKV layout of
/// <see cref="QueryGroupLayout"/>, so each rank gets whole query groups), rotary embeddings on the local
/// query and key heads, causal softmax attention over the local heads, and linear_proj (row-parallel,
/// input already parallel). Grouped-query attention: kvHeads divides heads; when TP exceeds kvHeads each
/// key/value head is replicated on TP / kvHeads ranks and its gradient is summed over them when gradients
/// are finalized. Forward issues one all-reduce and backward one (an all-gather and a reduce-scatter each
/// way with sequence parallelism).
/// </summary>
public sealed class ParallelAttention : IParallelLayer
{
    private readonly QueryGroupLayout _layout;
    private readonly ICommunicator? _replicaGroup;
    private readonly TensorSlot _q;
    private readonly TensorSlot _k;
    private readonly TensorSlot _v;
    private readonly TensorSlot _o;
    private readonly TensorSlot _lse;
    private readonly TensorSlot _dq;
    private readonly TensorSlot _dk;
    private readonly TensorSlot _dv;
    private readonly TensorSlot _dQkv;
    private readonly DeferredWeightGradients _deferred;
    private Saved? _saved;

    /// <param name="headDim">Width of one head (Megatron's kv_channels, Hugging Face's head_dim); hidden size / heads when null.</param>
    public ParallelAttention(ParallelContext context, string name, int hiddenSize, int heads, int kvHeads, bool bias,
        RotaryEmbedding? rotary = null, int? headDim = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(name);
        var frequencies = rotary ?? new RotaryEmbedding(10000);
        if (!(frequencies.Theta > 1) || !double.IsFinite(frequencies.Theta))
        {
            throw new ArgumentOutOfRangeException(nameof(rotary), frequencies.Theta, $"{name}: rotary base must be finite and greater than 1");
        }
        int size = context.TensorParallelSize;
        _layout = new QueryGroupLayout(name, hiddenSize, heads, kvHeads, headDim, size);
        Context = context;
        Name = name;
        HiddenSize = hiddenSize;
        Rotary = frequencies;
        bool sp = context.SequenceParallel;
        Qkv = new ColumnParallelLinear(context, $"{name}.linear_qkv", hiddenSize, _layout.FullRows, bias,
            gatherOutput: false, skipBiasAdd: false, sp, LinearActivation.None, _layout.RowsOf);
        Proj = new RowParallelLinear(context, $"{name}.linear_proj", heads * _layout.HeadDim, hiddenSize, bias,
            inputIsParallel: true, sequenceParallel: sp);
        Parameters = [.. Qkv.Parameters, .. Proj.Parameters];
        // A replica sharing its parameters (ParallelContext.ShareParameters) finds the reduction already set up.
        if (_layout.Replicas > 1 && Qkv.Weight.Reduction is null)
        {
            _replicaGroup = context.TensorParallel.Split(_layout.ReplicaGroupOf(context.TensorParallelRank), context.TensorParallelRank);
            int queryRows = _layout.LocalHeads * _layout.HeadDim;
            int kvRows = 2 * _layout.HeadDim;
            Qkv.Weight.ReduceGradientOver(_replicaGroup, (long)queryRows * hiddenSize, (long)kvRows * hiddenSize);
            Qkv.Bias?.ReduceGradientOver(_replicaGroup, queryRows, kvRows);
        }
        var backend = context.Backend;
        _q = new TensorSlot(backend);
        _k = new TensorSlot(backend);
        _v = new TensorSlot(backend);
        _o = new TensorSlot(backend);
        _lse = new TensorSlot(backend);
        _dq = new TensorSlot(backend);
        _dk = new TensorSlot(backend);
        _dv = new TensorSlot(backend);
        _dQkv = new TensorSlot(backend);
        _deferred = new DeferredWeightGradients(name);
    }

    public string Name { get; }

    public ParallelContext Context { get; }

    public IReadOnlyList<Parameter> Parameters { get; }

    public int HiddenSize { get; }

    public int Heads => _layout.Heads;

    public int KvHeads => _layout.KvHeads;

    public int HeadDim => _layout.HeadDim;

    /// <summary>Query heads on this rank.</summary>
    public int LocalHeads => _layout.LocalHeads;

    /// <summary>Key/value heads on this rank.</summary>
    public int LocalKvHeads => _layout.LocalGroups;

    /// <summary>The rotary frequencies (theta and any Llama 3.x scaling).</summary>
    public RotaryEmbedding Rotary { get; }

    public ColumnParallelLinear Qkv { get; }

    public RowParallelLinear Proj { get; }

    /// <summary>[tokens, hidden] (token shard with sequence parallelism) to the same shape; the output belongs to the layer.</summary>
    public Tensor Forward(Tensor input, TokenShape shape)
    {
        _deferred.CheckForward();
        var qkv = Qkv.Forward(input, shape);
        int tokens = shape.Tokens, hd = _layout.HeadDim, groups = _layout.LocalGroups;
        var attention = new AttentionShape(shape.Batch, shape.Sequence, _layout.LocalHeads, groups, hd, Causal: true);
        var compute = Context.Backend.Compute;
        var q = _q.Get(compute, (long)tokens * _layout.LocalHeads * hd);
        var k = _k.Get(compute, (long)tokens * groups * hd);
        var v = _v.Get(compute, (long)tokens * groups * hd);
        SplitQkv(qkv, q, k, v, tokens, toQkv: false);
        var kernels = Context.Kernels;
        kernels.Rope(q, shape.Sequence, shape.Batch, _layout.LocalHeads, hd, Rotary, 0, backward: false);
        kernels.Rope(k, shape.Sequence, shape.Batch, groups, hd, Rotary, 0, backward: false);
        var o = _o.Get(compute, q.Count);
        var lse = _lse.Get(Context.Backend.StatsType, (long)shape.Batch * _layout.LocalHeads * shape.Sequence);
        kernels.AttentionForward(o, lse, q, k, v, attention);
        _saved = new Saved(q, k, v, o, lse, attention);
        return Proj.Forward(o, shape);
    }

    /// <summary>Input gradient from output gradient; accumulates the QKV and projection gradients.</summary>
    public Tensor Backward(Tensor outputGrad) => Backward(outputGrad, deferWeightGradients: false);

    /// <summary>
    /// Input gradient from output gradient, as <see cref="Backward(Tensor)"/>; with <paramref name="deferWeightGradients"/>
    /// the projection's and QKV's weight and bias gradients are left for <see cref="BackwardWeights"/>. The
    /// projection's X is the attention output and QKV's dY the fused dQKV, both kept in the layer's buffers, which no
    /// other call writes until then; the output gradient given here (the projection's dY) must stay unchanged.
    /// </summary>
    public Tensor Backward(Tensor outputGrad, bool deferWeightGradients)
    {
        Check.ForwardDone(_saved is not null, Name);
        _deferred.CheckBackward();
        var (q, k, v, o, lse, attention) = _saved!;
        int tokens = attention.Batch * attention.SeqLen, hd = _layout.HeadDim, groups = _layout.LocalGroups;
        var dO = Proj.Backward(outputGrad, deferWeightGradients);
        var compute = Context.Backend.Compute;
        var dq = _dq.Get(compute, (long)tokens * _layout.LocalHeads * hd);
        var dk = _dk.Get(compute, (long)tokens * groups * hd);
        var dv = _dv.Get(compute, (long)tokens * groups * hd);
        var kernels = Context.Kernels;
        kernels.AttentionBackward(dq, dk, dv, dO, q, k, v, o, lse, attention);
        kernels.Rope(dq, attention.SeqLen, attention.Batch, _layout.LocalHeads, hd, Rotary, 0, backward: true);
        kernels.Rope(dk, attention.SeqLen, attention.Batch, groups, hd, Rotary, 0, backward: true);
        var dQkv = _dQkv.Get(compute, (long)tokens * _layout.LocalRows);
        SplitQkv(dQkv, dq, dk, dv, tokens, toQkv: true);
        var dx = Qkv.Backward(dQkv, deferWeightGradients);
        if (deferWeightGradients)
        {
            _deferred.Defer();
        }
        return dx;
    }

    /// <summary>The projection's then QKV's weight and bias gradients of the last deferred backward; throws when none is pending.</summary>
    public void BackwardWeights()
    {
        _deferred.Take();
        Proj.BackwardWeights();
        Qkv.BackwardWeights();
    }

    /// <summary>
    /// Copies between the fused [tokens, local rows] QKV activation and contiguous q [tokens, heads, hd],
    /// k and v [tokens, groups, hd]: out of qkv when <paramref name="toQkv"/> is false, into it otherwise.
    /// </summary>
    private void SplitQkv(Tensor qkv, Tensor q, Tensor k, Tensor v, int tokens, bool toQkv)
    {
        int hd = _layout.HeadDim, groups = _layout.LocalGroups, qPerGroup = _layout.LocalQueryHeadsPerGroup;
        int qkvStride = _layout.LocalRows, qStride = _layout.LocalHeads * hd, kvStride = groups * hd;
        for (int g = 0; g < groups; g++)
        {
            long groupStart = (long)g * _layout.LocalGroupRows;
            Copy(q, (long)g * qPerGroup * hd, qStride, groupStart, qPerGroup * hd);
            Copy(k, (long)g * hd, kvStride, groupStart + qPerGroup * hd, hd);
            Copy(v, (long)g * hd, kvStride, groupStart + (qPerGroup + 1) * hd, hd);
        }

        void Copy(Tensor part, long partOffset, int partStride, long qkvOffset, int cols)
        {
            var partView = LastDimension.Offset(part, partOffset);
            var qkvView = LastDimension.Offset(qkv, qkvOffset);
            if (toQkv)
            {
                Context.Kernels.Copy2D(qkvView, qkvStride, partView, partStride, tokens, cols);
            }
            else
            {
                Context.Kernels.Copy2D(partView, partStride, qkvView, qkvStride, tokens, cols);
            }
        }
    }

    /// <summary>What backward needs from forward: rotated q and k, v, the output and its log-sum-exp.</summary>
    private sealed record Saved(Tensor Q, Tensor K, Tensor V, Tensor O, Tensor Lse, AttentionShape Shape);

    public void Dispose()
    {
        Qkv.Dispose();
        Proj.Dispose();
        _replicaGroup?.Dispose();
        _q.Dispose();
        _k.Dispose();
        _v.Dispose();
        _o.Dispose();
        _lse.Dispose();
        _dq.Dispose();
        _dk.Dispose();
        _dv.Dispose();
        _dQkv.Dispose();
    }
}
