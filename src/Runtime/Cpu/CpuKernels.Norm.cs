using System.Numerics;
using System.Numerics.Tensors;

namespace ModelParallel.Runtime.Cpu;

public sealed partial class CpuKernels
{
    public void NormForward(NormKind kind, Tensor y, Tensor? sum, Tensor stats, Tensor x, Tensor? residual,
        Tensor weight, Tensor? bias, int rows, int cols, double eps)
    {
        CheckNormKind(kind, bias, nameof(bias));
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        if (!(eps >= 0) || double.IsInfinity(eps))
        {
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be finite and not negative");
        }
        long count = (long)rows * cols;
        string formula = $"rows*cols = {rows}*{cols}";
        var yt = Check(y, nameof(y), count, formula);
        var xt = Check(x, nameof(x), count, formula);
        var statsT = Check(stats, nameof(stats), 2L * rows, $"2*rows = 2*{rows}");
        var wt = Check(weight, nameof(weight), cols, $"cols = {cols}");
        var bt = bias is null ? null : Check(bias, nameof(bias), cols, $"cols = {cols}");
        var rt = residual is null ? null : Check(residual, nameof(residual), count, formula);
        if (rt is not null && sum is null)
        {
            throw new ArgumentNullException(nameof(sum), "sum is needed when residual is given");
        }
        var st = sum is null ? null : Check(sum, nameof(sum), count, formula);
        if (IsDouble)
        {
            NormForward<double>(kind, yt, st, statsT, xt, rt, wt, bt, rows, cols, eps);
        }
        else
        {
            NormForward<float>(kind, yt, st, statsT, xt, rt, wt, bt, rows, cols, eps);
        }
    }

    public void NormBackward(NormKind kind, Tensor dx, Tensor dWeight, Tensor? dBias, Tensor dy, Tensor? dResidual,
        Tensor x, Tensor weight, Tensor stats, int rows, int cols)
    {
        CheckNormKind(kind, dBias, nameof(dBias));
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        long count = (long)rows * cols;
        string formula = $"rows*cols = {rows}*{cols}";
        var dxt = Check(dx, nameof(dx), count, formula);
        var dwt = Check(dWeight, nameof(dWeight), cols, $"cols = {cols}");
        var dbt = dBias is null ? null : Check(dBias, nameof(dBias), cols, $"cols = {cols}");
        var dyt = Check(dy, nameof(dy), count, formula);
        var drt = dResidual is null ? null : Check(dResidual, nameof(dResidual), count, formula);
        var xt = Check(x, nameof(x), count, formula);
        var wt = Check(weight, nameof(weight), cols, $"cols = {cols}");
        var statsT = Check(stats, nameof(stats), 2L * rows, $"2*rows = 2*{rows}");
        if (IsDouble)
        {
            NormBackward<double>(kind, dxt, dwt, dbt, dyt, drt, xt, wt, statsT, rows, cols);
        }
        else
        {
            NormBackward<float>(kind, dxt, dwt, dbt, dyt, drt, xt, wt, statsT, rows, cols);
        }
    }

    private static void CheckNormKind(NormKind kind, Tensor? bias, string biasName)
    {
        if (!Enum.IsDefined(kind))
        {
            throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown norm kind");
        }
        if (kind == NormKind.RmsNorm && bias is not null)
        {
            throw new ArgumentException($"RmsNorm has no bias: {biasName} must be null", biasName);
        }
    }

    private static void NormForward<T>(NormKind kind, CpuTensor y, CpuTensor? sum, CpuTensor stats, CpuTensor x,
        CpuTensor? residual, CpuTensor weight, CpuTensor? bias, int rows, int cols, double eps)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T n = T.CreateChecked(cols), epsilon = T.CreateChecked(eps);
        For(rows, 4L * cols, (start, end) =>
        {
            Span<T> ys = y.Span<T>(), xs = x.Span<T>(), st = stats.Span<T>();
            Span<T> sums = sum is null ? default : sum.Span<T>();
            ReadOnlySpan<T> w = weight.Span<T>();
            for (int r = start; r < end; r++)
            {
                Span<T> input = xs.Slice(r * cols, cols), yRow = ys.Slice(r * cols, cols);
                if (sum is not null)
                {
                    var sumRow = sums.Slice(r * cols, cols);
                    if (residual is null)
                    {
                        input.CopyTo(sumRow);
                    }
                    else
                    {
                        TensorPrimitives.Add(input, residual.Span<T>().Slice(r * cols, cols), sumRow);
                    }
                    input = sumRow;
                }
                T rstd;
                if (kind == NormKind.LayerNorm)
                {
                    T mean = TensorPrimitives.Sum<T>(input) / n;
                    TensorPrimitives.Subtract(input, mean, yRow);
                    rstd = T.One / T.Sqrt(TensorPrimitives.SumOfSquares<T>(yRow) / n + epsilon);
                    st[r] = mean;
                    TensorPrimitives.Multiply(yRow, rstd, yRow);
                }
                else
                {
                    rstd = T.One / T.Sqrt(TensorPrimitives.SumOfSquares<T>(input) / n + epsilon);
                    st[r] = T.Zero;
                    TensorPrimitives.Multiply(input, rstd, yRow);
                }
                st[rows + r] = rstd;
                TensorPrimitives.Multiply(yRow, w, yRow);
                if (bias is not null)
                {
                    TensorPrimitives.Add(yRow, bias.Span<T>(), yRow);
                }
            }
        });
    }

    private static void NormBackward<T>(NormKind kind, CpuTensor dx, CpuTensor dWeight, CpuTensor? dBias, CpuTensor dy,
        CpuTensor? dResidual, CpuTensor x, CpuTensor weight, CpuTensor stats, int rows, int cols)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T n = T.CreateChecked(cols);
        bool layerNorm = kind == NormKind.LayerNorm;

        // x_hat = (x - mean) * rstd, with mean = 0 for RmsNorm.
        static void Normalised(ReadOnlySpan<T> xRow, T mean, T rstd, Span<T> xHat)
        {
            TensorPrimitives.Subtract(xRow, mean, xHat);
            TensorPrimitives.Multiply(xHat, rstd, xHat);
        }

        // Parameter gradients first: dx may be the same tensor as dy.
        {
            var xHat = new T[cols];
            ReadOnlySpan<T> xs = x.Span<T>(), dys = dy.Span<T>(), st = stats.Span<T>();
            Span<T> dw = dWeight.Span<T>();
            for (int r = 0; r < rows; r++)
            {
                Normalised(xs.Slice(r * cols, cols), layerNorm ? st[r] : T.Zero, st[rows + r], xHat);
                var dyRow = dys.Slice(r * cols, cols);
                TensorPrimitives.MultiplyAdd(dyRow, xHat, dw, dw);
                if (dBias is not null)
                {
                    var db = dBias.Span<T>();
                    TensorPrimitives.Add(db, dyRow, db);
                }
            }
        }

        // dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)), g = dy * weight; the mean(g) term for LayerNorm only.
        For(rows, 6L * cols, (start, end) =>
        {
            var xHat = new T[cols];
            var g = new T[cols];
            ReadOnlySpan<T> xs = x.Span<T>(), st = stats.Span<T>(), w = weight.Span<T>();
            Span<T> dxs = dx.Span<T>(), dys = dy.Span<T>();
            for (int r = start; r < end; r++)
            {
                T rstd = st[rows + r];
                Normalised(xs.Slice(r * cols, cols), layerNorm ? st[r] : T.Zero, rstd, xHat);
                TensorPrimitives.Multiply(dys.Slice(r * cols, cols), w, g);
                T projection = TensorPrimitives.Dot<T>(g, xHat) / n;
                T gMean = layerNorm ? TensorPrimitives.Sum<T>(g) / n : T.Zero;
                TensorPrimitives.MultiplyAdd(xHat, -projection, g, g);
                TensorPrimitives.Subtract(g, gMean, g);
                var dxRow = dxs.Slice(r * cols, cols);
                if (dResidual is null)
                {
                    TensorPrimitives.Multiply(g, rstd, dxRow);
                }
                else
                {
                    TensorPrimitives.MultiplyAdd(g, rstd, dResidual.Span<T>().Slice(r * cols, cols), dxRow);
                }
            }
        });
    }
}
