using System.Numerics;

namespace ModelParallel.Runtime.Cpu;

public sealed partial class CpuKernels
{
    public void GeluForward(Tensor y, Tensor x)
    {
        var xt = CheckDType(x, nameof(x));
        var yt = Check(y, nameof(y), xt.Count, "x's count");
        if (IsDouble)
        {
            GeluForward<double>(yt, xt);
        }
        else
        {
            GeluForward<float>(yt, xt);
        }
    }

    public void GeluBackward(Tensor dx, Tensor dy, Tensor x)
    {
        var xt = CheckDType(x, nameof(x));
        var dxt = Check(dx, nameof(dx), xt.Count, "x's count");
        var dyt = Check(dy, nameof(dy), xt.Count, "x's count");
        if (IsDouble)
        {
            GeluBackward<double>(dxt, dyt, xt);
        }
        else
        {
            GeluBackward<float>(dxt, dyt, xt);
        }
    }

    public void SwigluForward(Tensor y, Tensor gateUp, int rows, int cols)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        var yt = Check(y, nameof(y), (long)rows * cols, $"rows*cols = {rows}*{cols}");
        var gt = Check(gateUp, nameof(gateUp), 2L * rows * cols, $"rows*2*cols = {rows}*2*{cols}");
        if (IsDouble)
        {
            SwigluForward<double>(yt, gt, rows, cols);
        }
        else
        {
            SwigluForward<float>(yt, gt, rows, cols);
        }
    }

    public void SwigluBackward(Tensor dGateUp, Tensor dy, Tensor gateUp, int rows, int cols)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        var dgt = Check(dGateUp, nameof(dGateUp), 2L * rows * cols, $"rows*2*cols = {rows}*2*{cols}");
        var dyt = Check(dy, nameof(dy), (long)rows * cols, $"rows*cols = {rows}*{cols}");
        var gt = Check(gateUp, nameof(gateUp), 2L * rows * cols, $"rows*2*cols = {rows}*2*{cols}");
        if (IsDouble)
        {
            SwigluBackward<double>(dgt, dyt, gt, rows, cols);
        }
        else
        {
            SwigluBackward<float>(dgt, dyt, gt, rows, cols);
        }
    }

    private static void GeluForward<T>(CpuTensor y, CpuTensor x)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        For(x.Length, 16, (start, end) =>
        {
            Span<T> ys = y.Span<T>(), xs = x.Span<T>();
            for (int i = start; i < end; i++)
            {
                ys[i] = Gelu(xs[i]);
            }
        });
    }

    private static void GeluBackward<T>(CpuTensor dx, CpuTensor dy, CpuTensor x)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        For(x.Length, 16, (start, end) =>
        {
            Span<T> dxs = dx.Span<T>(), dys = dy.Span<T>(), xs = x.Span<T>();
            for (int i = start; i < end; i++)
            {
                dxs[i] = dys[i] * GeluGrad(xs[i]);
            }
        });
    }

    private static T Sigmoid<T>(T x)
        where T : IFloatingPointIeee754<T> => T.One / (T.One + T.Exp(-x));

    private static void SwigluForward<T>(CpuTensor y, CpuTensor gateUp, int rows, int cols)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        For(rows, 16L * cols, (start, end) =>
        {
            Span<T> ys = y.Span<T>(), gu = gateUp.Span<T>();
            for (int r = start; r < end; r++)
            {
                var gate = gu.Slice(2 * r * cols, cols);
                var up = gu.Slice(2 * r * cols + cols, cols);
                var yRow = ys.Slice(r * cols, cols);
                for (int j = 0; j < cols; j++)
                {
                    yRow[j] = gate[j] * Sigmoid(gate[j]) * up[j];
                }
            }
        });
    }

    private static void SwigluBackward<T>(CpuTensor dGateUp, CpuTensor dy, CpuTensor gateUp, int rows, int cols)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        For(rows, 16L * cols, (start, end) =>
        {
            Span<T> dgu = dGateUp.Span<T>(), dys = dy.Span<T>(), gu = gateUp.Span<T>();
            for (int r = start; r < end; r++)
            {
                var gate = gu.Slice(2 * r * cols, cols);
                var up = gu.Slice(2 * r * cols + cols, cols);
                var dGate = dgu.Slice(2 * r * cols, cols);
                var dUp = dgu.Slice(2 * r * cols + cols, cols);
                var dyRow = dys.Slice(r * cols, cols);
                for (int j = 0; j < cols; j++)
                {
                    T g = gate[j], u = up[j], d = dyRow[j], s = Sigmoid(g);
                    // Read both inputs before writing: dGateUp may be the same tensor as gateUp.
                    dGate[j] = d * u * s * (T.One + g * (T.One - s));
                    dUp[j] = d * g * s;
                }
            }
        });
    }
}
