using System.Numerics;
using System.Numerics.Tensors;

namespace ModelParallel.Runtime.Cpu;

public sealed partial class CpuKernels
{
    public void CrossEntropyRowMax(Tensor rowMax, Tensor logits, int rows, int cols)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        var mt = Check(rowMax, nameof(rowMax), rows, $"rows = {rows}");
        var lt = Check(logits, nameof(logits), (long)rows * cols, $"rows*cols = {rows}*{cols}");
        if (IsDouble)
        {
            CrossEntropyRowMax<double>(mt, lt, rows, cols);
        }
        else
        {
            CrossEntropyRowMax<float>(mt, lt, rows, cols);
        }
    }

    public void CrossEntropySumExp(Tensor sumExp, Tensor targetLogit, Tensor logits, Tensor rowMax, Tensor targets,
        int rows, int cols, int vocabStart)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        NonNegative(vocabStart, nameof(vocabStart));
        var st = Check(sumExp, nameof(sumExp), rows, $"rows = {rows}");
        var tlt = Check(targetLogit, nameof(targetLogit), rows, $"rows = {rows}");
        var lt = Check(logits, nameof(logits), (long)rows * cols, $"rows*cols = {rows}*{cols}");
        var mt = Check(rowMax, nameof(rowMax), rows, $"rows = {rows}");
        var tt = Check(targets, nameof(targets), rows, $"rows = {rows}", DType.Int32);
        if (IsDouble)
        {
            CrossEntropySumExp<double>(st, tlt, lt, mt, tt, rows, cols, vocabStart);
        }
        else
        {
            CrossEntropySumExp<float>(st, tlt, lt, mt, tt, rows, cols, vocabStart);
        }
    }

    public void CrossEntropyLoss(Tensor loss, Tensor rowMax, Tensor sumExp, Tensor targetLogit, int rows)
    {
        Positive(rows, nameof(rows));
        var lt = Check(loss, nameof(loss), rows, $"rows = {rows}");
        var mt = Check(rowMax, nameof(rowMax), rows, $"rows = {rows}");
        var st = Check(sumExp, nameof(sumExp), rows, $"rows = {rows}");
        var tlt = Check(targetLogit, nameof(targetLogit), rows, $"rows = {rows}");
        if (IsDouble)
        {
            CrossEntropyLoss<double>(lt, mt, st, tlt);
        }
        else
        {
            CrossEntropyLoss<float>(lt, mt, st, tlt);
        }
    }

    public void CrossEntropyBackward(Tensor dLogits, Tensor logits, Tensor rowMax, Tensor sumExp, Tensor targets,
        int rows, int cols, int vocabStart, double scale)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        NonNegative(vocabStart, nameof(vocabStart));
        var dlt = Check(dLogits, nameof(dLogits), (long)rows * cols, $"rows*cols = {rows}*{cols}");
        var lt = Check(logits, nameof(logits), (long)rows * cols, $"rows*cols = {rows}*{cols}");
        var mt = Check(rowMax, nameof(rowMax), rows, $"rows = {rows}");
        var st = Check(sumExp, nameof(sumExp), rows, $"rows = {rows}");
        var tt = Check(targets, nameof(targets), rows, $"rows = {rows}", DType.Int32);
        if (IsDouble)
        {
            CrossEntropyBackward<double>(dlt, lt, mt, st, tt, rows, cols, vocabStart, scale);
        }
        else
        {
            CrossEntropyBackward<float>(dlt, lt, mt, st, tt, rows, cols, vocabStart, scale);
        }
    }

    private static void CrossEntropyRowMax<T>(CpuTensor rowMax, CpuTensor logits, int rows, int cols)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        For(rows, cols, (start, end) =>
        {
            Span<T> max = rowMax.Span<T>(), ls = logits.Span<T>();
            for (int r = start; r < end; r++)
            {
                max[r] = TensorPrimitives.Max<T>(ls.Slice(r * cols, cols));
            }
        });
    }

    private static void CrossEntropySumExp<T>(CpuTensor sumExp, CpuTensor targetLogit, CpuTensor logits, CpuTensor rowMax,
        CpuTensor targets, int rows, int cols, int vocabStart)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        For(rows, 8L * cols, (start, end) =>
        {
            var shifted = new T[cols];
            Span<T> sums = sumExp.Span<T>(), target = targetLogit.Span<T>(), ls = logits.Span<T>(), max = rowMax.Span<T>();
            ReadOnlySpan<int> ts = targets.Span<int>();
            for (int r = start; r < end; r++)
            {
                var row = ls.Slice(r * cols, cols);
                TensorPrimitives.Subtract(row, max[r], shifted);
                TensorPrimitives.Exp(shifted, shifted);
                sums[r] = TensorPrimitives.Sum<T>(shifted);
                long column = (long)ts[r] - vocabStart;
                target[r] = column >= 0 && column < cols ? row[(int)column] : T.Zero;
            }
        });
    }

    private static void CrossEntropyLoss<T>(CpuTensor loss, CpuTensor rowMax, CpuTensor sumExp, CpuTensor targetLogit)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Span<T> ls = loss.Span<T>(), max = rowMax.Span<T>(), sums = sumExp.Span<T>(), target = targetLogit.Span<T>();
        for (int r = 0; r < ls.Length; r++)
        {
            ls[r] = T.Log(sums[r]) + max[r] - target[r];
        }
    }

    private static void CrossEntropyBackward<T>(CpuTensor dLogits, CpuTensor logits, CpuTensor rowMax, CpuTensor sumExp,
        CpuTensor targets, int rows, int cols, int vocabStart, double scale)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T s = T.CreateChecked(scale);
        For(rows, 8L * cols, (start, end) =>
        {
            Span<T> dls = dLogits.Span<T>(), ls = logits.Span<T>(), max = rowMax.Span<T>(), sums = sumExp.Span<T>();
            ReadOnlySpan<int> ts = targets.Span<int>();
            for (int r = start; r < end; r++)
            {
                var row = ls.Slice(r * cols, cols);
                var dRow = dls.Slice(r * cols, cols);
                // dLogits may be the same tensor as logits: each element is read before it is written.
                TensorPrimitives.Subtract(row, max[r], dRow);
                TensorPrimitives.Exp(dRow, dRow);
                TensorPrimitives.Multiply(dRow, s / sums[r], dRow);
                long column = (long)ts[r] - vocabStart;
                if (column >= 0 && column < cols)
                {
                    dRow[(int)column] -= s;
                }
            }
        });
    }
}
