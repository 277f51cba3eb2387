using System.Numerics;
using System.Numerics.Tensors;

namespace ModelParallel.Runtime.Cpu;

public sealed partial class CpuKernels
{
    public void AttentionForward(Tensor o, Tensor lse, Tensor q, Tensor k, Tensor v, AttentionShape shape)
    {
        shape.Validate();
        var (qCount, kvCount, lseCount) = AttentionCounts(shape);
        var ot = Check(o, nameof(o), qCount, "seq*batch*heads*headDim");
        var lt = Check(lse, nameof(lse), lseCount, "batch*heads*seq");
        var qt = Check(q, nameof(q), qCount, "seq*batch*heads*headDim");
        var kt = Check(k, nameof(k), kvCount, "seq*batch*kvHeads*headDim");
        var vt = Check(v, nameof(v), kvCount, "seq*batch*kvHeads*headDim");
        if (IsDouble)
        {
            AttentionForward<double>(ot, lt, qt, kt, vt, shape);
        }
        else
        {
            AttentionForward<float>(ot, lt, qt, kt, vt, shape);
        }
    }

    public void AttentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dO, Tensor q, Tensor k, Tensor v,
        Tensor o, Tensor lse, AttentionShape shape)
    {
        shape.Validate();
        var (qCount, kvCount, lseCount) = AttentionCounts(shape);
        var dqt = Check(dq, nameof(dq), qCount, "seq*batch*heads*headDim");
        var dkt = Check(dk, nameof(dk), kvCount, "seq*batch*kvHeads*headDim");
        var dvt = Check(dv, nameof(dv), kvCount, "seq*batch*kvHeads*headDim");
        var dot = Check(dO, nameof(dO), qCount, "seq*batch*heads*headDim");
        var qt = Check(q, nameof(q), qCount, "seq*batch*heads*headDim");
        var kt = Check(k, nameof(k), kvCount, "seq*batch*kvHeads*headDim");
        var vt = Check(v, nameof(v), kvCount, "seq*batch*kvHeads*headDim");
        var ot = Check(o, nameof(o), qCount, "seq*batch*heads*headDim");
        var lt = Check(lse, nameof(lse), lseCount, "batch*heads*seq");
        if (IsDouble)
        {
            AttentionBackward<double>(dqt, dkt, dvt, dot, qt, kt, vt, ot, lt, shape);
        }
        else
        {
            AttentionBackward<float>(dqt, dkt, dvt, dot, qt, kt, vt, ot, lt, shape);
        }
    }

    private static (long Q, long Kv, long Lse) AttentionCounts(AttentionShape s) =>
        ((long)s.SeqLen * s.Batch * s.Heads * s.HeadDim, (long)s.SeqLen * s.Batch * s.KvHeads * s.HeadDim,
            (long)s.Batch * s.Heads * s.SeqLen);

    /// <summary>Copies head <paramref name="head"/> of batch <paramref name="batch"/> out of a [seq, batch, heads, headDim]
    /// tensor into a contiguous [seq, headDim] block (or back when <paramref name="toTensor"/>).</summary>
    private static void MoveHead<T>(Span<T> tensor, Span<T> block, int seq, int batches, int heads, int headDim,
        int batch, int head, bool toTensor)
    {
        for (int s = 0; s < seq; s++)
        {
            var row = tensor.Slice(((s * batches + batch) * heads + head) * headDim, headDim);
            var blockRow = block.Slice(s * headDim, headDim);
            if (toTensor)
            {
                blockRow.CopyTo(row);
            }
            else
            {
                row.CopyTo(blockRow);
            }
        }
    }

    private static void AttentionForward<T>(CpuTensor o, CpuTensor lse, CpuTensor q, CpuTensor k, CpuTensor v,
        AttentionShape shape)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int seq = shape.SeqLen, dim = shape.HeadDim, group = shape.Heads / shape.KvHeads;
        T scale = T.One / T.Sqrt(T.CreateChecked(dim));
        For(shape.Batch * shape.KvHeads, (long)group * seq * seq * dim, (start, end) =>
        {
            var qb = new T[seq * dim];
            var kb = new T[seq * dim];
            var vb = new T[seq * dim];
            var ob = new T[seq * dim];
            var scores = new T[seq];
            for (int item = start; item < end; item++)
            {
                int batch = item / shape.KvHeads, kvHead = item % shape.KvHeads;
                MoveHead<T>(k.Span<T>(), kb, seq, shape.Batch, shape.KvHeads, dim, batch, kvHead, false);
                MoveHead<T>(v.Span<T>(), vb, seq, shape.Batch, shape.KvHeads, dim, batch, kvHead, false);
                for (int head = kvHead * group; head < (kvHead + 1) * group; head++)
                {
                    MoveHead<T>(q.Span<T>(), qb, seq, shape.Batch, shape.Heads, dim, batch, head, false);
                    var lseRow = lse.Span<T>().Slice((batch * shape.Heads + head) * seq, seq);
                    for (int i = 0; i < seq; i++)
                    {
                        int keys = shape.Causal ? i + 1 : seq;
                        var qi = qb.AsSpan(i * dim, dim);
                        var s = scores.AsSpan(0, keys);
                        for (int j = 0; j < keys; j++)
                        {
                            s[j] = scale * TensorPrimitives.Dot<T>(qi, kb.AsSpan(j * dim, dim));
                        }
                        T max = TensorPrimitives.Max<T>(s);
                        TensorPrimitives.Subtract(s, max, s);
                        TensorPrimitives.Exp(s, s);
                        T sum = TensorPrimitives.Sum<T>(s);
                        lseRow[i] = max + T.Log(sum);
                        var oi = ob.AsSpan(i * dim, dim);
                        oi.Clear();
                        for (int j = 0; j < keys; j++)
                        {
                            TensorPrimitives.MultiplyAdd(vb.AsSpan(j * dim, dim), s[j] / sum, oi, oi);
                        }
                    }
                    MoveHead<T>(o.Span<T>(), ob, seq, shape.Batch, shape.Heads, dim, batch, head, true);
                }
            }
        });
    }

    private static void AttentionBackward<T>(CpuTensor dq, CpuTensor dk, CpuTensor dv, CpuTensor dO, CpuTensor q,
        CpuTensor k, CpuTensor v, CpuTensor o, CpuTensor lse, AttentionShape shape)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int seq = shape.SeqLen, dim = shape.HeadDim, group = shape.Heads / shape.KvHeads;
        T scale = T.One / T.Sqrt(T.CreateChecked(dim));
        // Each work item owns one kv head of one batch, so its dk and dv sums (over the query heads that share it)
        // are written by one thread only.
        For(shape.Batch * shape.KvHeads, 2L * group * seq * seq * dim, (start, end) =>
        {
            var qb = new T[seq * dim];
            var kb = new T[seq * dim];
            var vb = new T[seq * dim];
            var ob = new T[seq * dim];
            var dob = new T[seq * dim];
            var dqb = new T[seq * dim];
            var dkb = new T[seq * dim];
            var dvb = new T[seq * dim];
            for (int item = start; item < end; item++)
            {
                int batch = item / shape.KvHeads, kvHead = item % shape.KvHeads;
                MoveHead<T>(k.Span<T>(), kb, seq, shape.Batch, shape.KvHeads, dim, batch, kvHead, false);
                MoveHead<T>(v.Span<T>(), vb, seq, shape.Batch, shape.KvHeads, dim, batch, kvHead, false);
                Array.Clear(dkb);
                Array.Clear(dvb);
                for (int head = kvHead * group; head < (kvHead + 1) * group; head++)
                {
                    MoveHead<T>(q.Span<T>(), qb, seq, shape.Batch, shape.Heads, dim, batch, head, false);
                    MoveHead<T>(o.Span<T>(), ob, seq, shape.Batch, shape.Heads, dim, batch, head, false);
                    MoveHead<T>(dO.Span<T>(), dob, seq, shape.Batch, shape.Heads, dim, batch, head, false);
                    var lseRow = lse.Span<T>().Slice((batch * shape.Heads + head) * seq, seq);
                    Array.Clear(dqb);
                    for (int i = 0; i < seq; i++)
                    {
                        int keys = shape.Causal ? i + 1 : seq;
                        var qi = qb.AsSpan(i * dim, dim);
                        var doi = dob.AsSpan(i * dim, dim);
                        var dqi = dqb.AsSpan(i * dim, dim);
                        T rowDot = TensorPrimitives.Dot<T>(doi, ob.AsSpan(i * dim, dim));
                        for (int j = 0; j < keys; j++)
                        {
                            var kj = kb.AsSpan(j * dim, dim);
                            T p = T.Exp(scale * TensorPrimitives.Dot<T>(qi, kj) - lseRow[i]);
                            var dvj = dvb.AsSpan(j * dim, dim);
                            TensorPrimitives.MultiplyAdd(doi, p, dvj, dvj);
                            T dp = TensorPrimitives.Dot<T>(doi, vb.AsSpan(j * dim, dim));
                            T ds = scale * p * (dp - rowDot);
                            TensorPrimitives.MultiplyAdd(kj, ds, dqi, dqi);
                            var dkj = dkb.AsSpan(j * dim, dim);
                            TensorPrimitives.MultiplyAdd(qi, ds, dkj, dkj);
                        }
                    }
                    MoveHead<T>(dq.Span<T>(), dqb, seq, shape.Batch, shape.Heads, dim, batch, head, true);
                }
                MoveHead<T>(dk.Span<T>(), dkb, seq, shape.Batch, shape.KvHeads, dim, batch, kvHead, true);
                MoveHead<T>(dv.Span<T>(), dvb, seq, shape.Batch, shape.KvHeads, dim, batch, kvHead, true);
            }
        });
    }
}
