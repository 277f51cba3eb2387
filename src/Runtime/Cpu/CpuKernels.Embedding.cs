using System.Numerics;
using System.Numerics.Tensors;

namespace ModelParallel.Runtime.Cpu;

public sealed partial class CpuKernels
{
    public void EmbeddingForward(Tensor output, Tensor ids, Tensor table, int tokens, int hidden, int vocabStart, int vocabRows)
    {
        CheckEmbeddingSizes(tokens, hidden, vocabStart, vocabRows);
        var ot = Check(output, nameof(output), (long)tokens * hidden, $"tokens*hidden = {tokens}*{hidden}");
        var it = Check(ids, nameof(ids), tokens, $"tokens = {tokens}", DType.Int32);
        var tt = Check(table, nameof(table), (long)vocabRows * hidden, $"vocabRows*hidden = {vocabRows}*{hidden}");
        if (IsDouble)
        {
            EmbeddingForward<double>(ot, it, tt, tokens, hidden, vocabStart, vocabRows);
        }
        else
        {
            EmbeddingForward<float>(ot, it, tt, tokens, hidden, vocabStart, vocabRows);
        }
    }

    public void EmbeddingBackward(Tensor dTable, Tensor dOut, Tensor ids, int tokens, int hidden, int vocabStart, int vocabRows)
    {
        CheckEmbeddingSizes(tokens, hidden, vocabStart, vocabRows);
        var dtt = Check(dTable, nameof(dTable), (long)vocabRows * hidden, $"vocabRows*hidden = {vocabRows}*{hidden}");
        var dot = Check(dOut, nameof(dOut), (long)tokens * hidden, $"tokens*hidden = {tokens}*{hidden}");
        var it = Check(ids, nameof(ids), tokens, $"tokens = {tokens}", DType.Int32);
        if (IsDouble)
        {
            EmbeddingBackward<double>(dtt, dot, it, tokens, hidden, vocabStart, vocabRows);
        }
        else
        {
            EmbeddingBackward<float>(dtt, dot, it, tokens, hidden, vocabStart, vocabRows);
        }
    }

    private static void CheckEmbeddingSizes(int tokens, int hidden, int vocabStart, int vocabRows)
    {
        Positive(tokens, nameof(tokens));
        Positive(hidden, nameof(hidden));
        NonNegative(vocabStart, nameof(vocabStart));
        Positive(vocabRows, nameof(vocabRows));
    }

    private static void EmbeddingForward<T>(CpuTensor output, CpuTensor ids, CpuTensor table, int tokens, int hidden,
        int vocabStart, int vocabRows)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        For(tokens, hidden, (start, end) =>
        {
            Span<T> outs = output.Span<T>(), rows = table.Span<T>();
            ReadOnlySpan<int> idSpan = ids.Span<int>();
            for (int t = start; t < end; t++)
            {
                long row = (long)idSpan[t] - vocabStart;
                var outRow = outs.Slice(t * hidden, hidden);
                if (row >= 0 && row < vocabRows)
                {
                    rows.Slice((int)row * hidden, hidden).CopyTo(outRow);
                }
                else
                {
                    outRow.Clear();
                }
            }
        });
    }

    private static void EmbeddingBackward<T>(CpuTensor dTable, CpuTensor dOut, CpuTensor ids, int tokens, int hidden,
        int vocabStart, int vocabRows)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // Tokens in order on one thread: repeated ids accumulate into the same row.
        Span<T> rows = dTable.Span<T>();
        ReadOnlySpan<T> grads = dOut.Span<T>();
        ReadOnlySpan<int> idSpan = ids.Span<int>();
        for (int t = 0; t < tokens; t++)
        {
            long row = (long)idSpan[t] - vocabStart;
            if (row >= 0 && row < vocabRows)
            {
                var tableRow = rows.Slice((int)row * hidden, hidden);
                TensorPrimitives.Add(tableRow, grads.Slice(t * hidden, hidden), tableRow);
            }
        }
    }
}
