using System.Numerics;
using System.Numerics.Tensors;

namespace ModelParallel.Runtime.Cpu;

public sealed partial class CpuKernels
{
    public void Add(Tensor y, Tensor a, Tensor b)
    {
        var at = CheckDType(a, nameof(a));
        var bt = Check(b, nameof(b), at.Count, "a's count");
        var yt = Check(y, nameof(y), at.Count, "a's count");
        if (IsDouble)
        {
            TensorPrimitives.Add(at.Span<double>(), bt.Span<double>(), yt.Span<double>());
        }
        else
        {
            TensorPrimitives.Add(at.Span<float>(), bt.Span<float>(), yt.Span<float>());
        }
    }

    public void Axpy(Tensor y, float alpha, Tensor x)
    {
        var xt = FloatTensor(x, nameof(x));
        var yt = FloatTensor(y, nameof(y));
        if (xt.Count != yt.Count)
        {
            throw new ArgumentException($"y has {yt.Count} elements but x has {xt.Count}", nameof(y));
        }
        switch (xt.DType, yt.DType)
        {
            case (DType.Float32, DType.Float32):
                TensorPrimitives.MultiplyAdd(xt.Span<float>(), alpha, yt.Span<float>(), yt.Span<float>());
                break;
            case (DType.Float64, DType.Float64):
                TensorPrimitives.MultiplyAdd(xt.Span<double>(), alpha, yt.Span<double>(), yt.Span<double>());
                break;
            case (DType.Float32, DType.Float64):
                AxpyMixed<float, double>(yt.Span<double>(), alpha, xt.Span<float>());
                break;
            default:
                AxpyMixed<double, float>(yt.Span<float>(), alpha, xt.Span<double>());
                break;
        }
    }

    public void AddBias(Tensor y, Tensor bias, int rows, int cols)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        var yt = Check(y, nameof(y), (long)rows * cols, $"rows*cols = {rows}*{cols}");
        var bt = Check(bias, nameof(bias), cols, $"cols = {cols}");
        if (IsDouble)
        {
            AddBias<double>(yt, bt, rows, cols);
        }
        else
        {
            AddBias<float>(yt, bt, rows, cols);
        }
    }

    public void BiasGrad(Tensor dBias, Tensor dy, int rows, int cols)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        var dbt = Check(dBias, nameof(dBias), cols, $"cols = {cols}", _backend.GradType);
        var dyt = Check(dy, nameof(dy), (long)rows * cols, $"rows*cols = {rows}*{cols}");
        if (IsDouble)
        {
            BiasGrad<double>(dbt, dyt, rows, cols);
        }
        else
        {
            BiasGrad<float>(dbt, dyt, rows, cols);
        }
    }

    public void Fill(Tensor t, double value)
    {
        ArgumentNullException.ThrowIfNull(t);
        var tt = _backend.Own(t, nameof(t));
        switch (tt.DType)
        {
            case DType.Float32:
                tt.Span<float>().Fill((float)value);
                break;
            case DType.Float64:
                tt.Span<double>().Fill(value);
                break;
            default:
                if (value != Math.Floor(value) || value < int.MinValue || value > int.MaxValue)
                {
                    throw new ArgumentOutOfRangeException(nameof(value), value, $"cannot fill the Int32 tensor {t} with {value}");
                }
                tt.Span<int>().Fill((int)value);
                break;
        }
    }

    public void Convert(Tensor dst, Tensor src)
    {
        ArgumentNullException.ThrowIfNull(dst);
        ArgumentNullException.ThrowIfNull(src);
        var dt = _backend.Own(dst, nameof(dst));
        var st = _backend.Own(src, nameof(src));
        if (dt.Count != st.Count)
        {
            throw new ArgumentException($"dst has {dt.Count} elements but src has {st.Count}", nameof(dst));
        }
        switch (st.DType, dt.DType)
        {
            case (DType.Float32, DType.Float64):
                TensorPrimitives.ConvertChecked<float, double>(st.Span<float>(), dt.Span<double>());
                break;
            case (DType.Float64, DType.Float32):
                TensorPrimitives.ConvertTruncating<double, float>(st.Span<double>(), dt.Span<float>());
                break;
            case (DType.Int32, DType.Float32):
                TensorPrimitives.ConvertTruncating<int, float>(st.Span<int>(), dt.Span<float>());
                break;
            case (DType.Int32, DType.Float64):
                TensorPrimitives.ConvertChecked<int, double>(st.Span<int>(), dt.Span<double>());
                break;
            case var (from, to) when from == to:
                Array.Copy(st.Storage, st.Offset, dt.Storage, dt.Offset, st.Length);
                break;
            default:
                throw new ArgumentException($"cannot convert {st.DType} to {dt.DType}", nameof(dst));
        }
    }

    public void Copy2D(Tensor dst, int dstStride, Tensor src, int srcStride, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(dst);
        ArgumentNullException.ThrowIfNull(src);
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        if (dstStride < cols)
        {
            throw new ArgumentOutOfRangeException(nameof(dstStride), dstStride, $"dstStride must be at least cols = {cols}");
        }
        if (srcStride < cols)
        {
            throw new ArgumentOutOfRangeException(nameof(srcStride), srcStride, $"srcStride must be at least cols = {cols}");
        }
        var dt = _backend.Own(dst, nameof(dst));
        var st = _backend.Own(src, nameof(src));
        if (dt.DType != st.DType)
        {
            throw new ArgumentException($"dst is {dt.DType} but src is {st.DType}", nameof(dst));
        }
        long dstNeeded = (long)(rows - 1) * dstStride + cols, srcNeeded = (long)(rows - 1) * srcStride + cols;
        if (dt.Count < dstNeeded)
        {
            throw new ArgumentException(
                $"dst has {dt.Count} elements but (rows-1)*dstStride+cols = {dstNeeded}", nameof(dst));
        }
        if (st.Count < srcNeeded)
        {
            throw new ArgumentException(
                $"src has {st.Count} elements but (rows-1)*srcStride+cols = {srcNeeded}", nameof(src));
        }
        if (dt.Overlaps(st))
        {
            throw new ArgumentException("dst and src overlap", nameof(dst));
        }
        for (int r = 0; r < rows; r++)
        {
            Array.Copy(st.Storage, st.Offset + (long)r * srcStride, dt.Storage, dt.Offset + (long)r * dstStride, cols);
        }
    }

    private CpuTensor FloatTensor(Tensor tensor, string name)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        var t = _backend.Own(tensor, name);
        if (!t.DType.IsFloatingPoint())
        {
            throw new ArgumentException($"{name} is {t.DType} but must be Float32 or Float64", name);
        }
        return t;
    }

    private static void AxpyMixed<TX, TY>(Span<TY> y, float alpha, ReadOnlySpan<TX> x)
        where TX : INumberBase<TX>
        where TY : IFloatingPointIeee754<TY>
    {
        TY a = TY.CreateChecked(alpha);
        for (int i = 0; i < y.Length; i++)
        {
            y[i] += a * TY.CreateTruncating(x[i]);
        }
    }

    private static void AddBias<T>(CpuTensor y, CpuTensor bias, int rows, int cols)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        For(rows, cols, (start, end) =>
        {
            Span<T> ys = y.Span<T>(), b = bias.Span<T>();
            for (int r = start; r < end; r++)
            {
                var row = ys.Slice(r * cols, cols);
                TensorPrimitives.Add(row, b, row);
            }
        });
    }

    private static void BiasGrad<T>(CpuTensor dBias, CpuTensor dy, int rows, int cols)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Span<T> db = dBias.Span<T>(), dys = dy.Span<T>();
        for (int r = 0; r < rows; r++)
        {
            TensorPrimitives.Add(db, dys.Slice(r * cols, cols), db);
        }
    }
}
