using ModelParallel.Runtime;

namespace ModelParallel.Tests.Cpu;

/// <summary>Naive float64 loops that the kernels are checked against, written straight from the definitions.</summary>
internal static class CpuReference
{
    private static readonly double GeluC = Math.Sqrt(2 / Math.PI);

    public static double Gelu(double x) => 0.5 * x * (1 + Math.Tanh(GeluC * (x + 0.044715 * x * x * x)));

    /// <summary>Derivative of the tanh GeLU (checked against finite differences in the activation tests).</summary>
    public static double GeluGrad(double x)
    {
        double t = Math.Tanh(GeluC * (x + 0.044715 * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GeluC * (1 + 3 * 0.044715 * x * x);
    }

    public static double Silu(double x) => x / (1 + Math.Exp(-x));

    /// <summary>op(A) op(B) as a row-major [m, n] array.</summary>
    public static double[] MatMul(double[] a, double[] b, int m, int n, int k, bool transA, bool transB)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                {
                    double av = transA ? a[p * m + i] : a[i * k + p];
                    double bv = transB ? b[j * k + p] : b[p * n + j];
                    sum += av * bv;
                }
                c[i * n + j] = sum;
            }
        }
        return c;
    }

    /// <summary>Softmax attention over [seq, batch, heads, headDim] tensors; returns (o, lse[batch, heads, seq]).</summary>
    public static (double[] O, double[] Lse) Attention(double[] q, double[] k, double[] v, AttentionShape s)
    {
        var o = new double[q.Length];
        var lse = new double[s.Batch * s.Heads * s.SeqLen];
        int group = s.Heads / s.KvHeads;
        double scale = 1 / Math.Sqrt(s.HeadDim);
        int QIndex(int t, int b, int h, int d) => ((t * s.Batch + b) * s.Heads + h) * s.HeadDim + d;
        int KIndex(int t, int b, int h, int d) => ((t * s.Batch + b) * s.KvHeads + h) * s.HeadDim + d;
        for (int b = 0; b < s.Batch; b++)
        {
            for (int h = 0; h < s.Heads; h++)
            {
                int kvh = h / group;
                for (int i = 0; i < s.SeqLen; i++)
                {
                    int keys = s.Causal ? i + 1 : s.SeqLen;
                    var scores = new double[keys];
                    for (int j = 0; j < keys; j++)
                    {
                        for (int d = 0; d < s.HeadDim; d++)
                        {
                            scores[j] += q[QIndex(i, b, h, d)] * k[KIndex(j, b, kvh, d)];
                        }
                        scores[j] *= scale;
                    }
                    double max = scores.Max();
                    double sum = scores.Sum(x => Math.Exp(x - max));
                    lse[(b * s.Heads + h) * s.SeqLen + i] = max + Math.Log(sum);
                    for (int j = 0; j < keys; j++)
                    {
                        double p = Math.Exp(scores[j] - max) / sum;
                        for (int d = 0; d < s.HeadDim; d++)
                        {
                            o[QIndex(i, b, h, d)] += p * v[KIndex(j, b, kvh, d)];
                        }
                    }
                }
            }
        }
        return (o, lse);
    }

    /// <summary>RmsNorm or LayerNorm of each row of x; returns (y, mean, rstd) with mean 0 for RmsNorm.</summary>
    public static (double[] Y, double[] Mean, double[] Rstd) Norm(NormKind kind, double[] x, double[] weight, double[]? bias,
        int rows, int cols, double eps)
    {
        var y = new double[rows * cols];
        var means = new double[rows];
        var rstds = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            var row = x.AsSpan(r * cols, cols).ToArray();
            double mean = kind == NormKind.LayerNorm ? row.Average() : 0;
            double variance = row.Select(v => (v - mean) * (v - mean)).Average();
            double rstd = 1 / Math.Sqrt(variance + eps);
            for (int c = 0; c < cols; c++)
            {
                y[r * cols + c] = (row[c] - mean) * rstd * weight[c] + (bias?[c] ?? 0);
            }
            means[r] = mean;
            rstds[r] = rstd;
        }
        return (y, means, rstds);
    }

    /// <summary>sum(a .* b).</summary>
    public static double Dot(double[] a, double[] b) => a.Zip(b, (x, y) => x * y).Sum();

    public static double[] Add(double[] a, double[] b) => [.. a.Zip(b, (x, y) => x + y)];
}
