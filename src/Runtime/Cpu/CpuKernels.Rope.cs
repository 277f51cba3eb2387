using System.Numerics;

namespace ModelParallel.Runtime.Cpu;

public sealed partial class CpuKernels
{
    public void Rope(Tensor x, int seqLen, int batch, int heads, int headDim, RotaryEmbedding rotary, int positionOffset, bool backward)
    {
        Positive(seqLen, nameof(seqLen));
        Positive(batch, nameof(batch));
        Positive(heads, nameof(heads));
        Positive(headDim, nameof(headDim));
        if (headDim % 2 != 0)
        {
            throw new ArgumentException($"headDim {headDim} must be even for rotary embedding", nameof(headDim));
        }
        rotary.Validate(nameof(rotary));
        NonNegative(positionOffset, nameof(positionOffset));
        var xt = Check(x, nameof(x), (long)seqLen * batch * heads * headDim, "seqLen*batch*heads*headDim");
        var inverseFrequencies = new double[headDim / 2];
        for (int i = 0; i < inverseFrequencies.Length; i++)
        {
            inverseFrequencies[i] = rotary.InverseFrequency(i, headDim);
        }
        if (IsDouble)
        {
            Rope<double>(xt, seqLen, batch * heads, headDim, inverseFrequencies, positionOffset, backward);
        }
        else
        {
            Rope<float>(xt, seqLen, batch * heads, headDim, inverseFrequencies, positionOffset, backward);
        }
    }

    /// <summary>Rotates pairs (i, i + half) of every head vector by angle (position * inverseFrequencies[i]),
    /// or by its negative for backward. Angles are computed in double.</summary>
    private static void Rope<T>(CpuTensor x, int seqLen, int vectorsPerPosition, int headDim, double[] inverseFrequencies,
        int positionOffset, bool backward)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int half = headDim / 2;
        For(seqLen, (long)vectorsPerPosition * headDim * 4, (start, end) =>
        {
            var cos = new T[half];
            var sin = new T[half];
            Span<T> xs = x.Span<T>();
            for (int s = start; s < end; s++)
            {
                double position = s + positionOffset;
                for (int i = 0; i < half; i++)
                {
                    double angle = position * inverseFrequencies[i];
                    cos[i] = T.CreateChecked(Math.Cos(angle));
                    sin[i] = T.CreateChecked(backward ? -Math.Sin(angle) : Math.Sin(angle));
                }
                for (int v = 0; v < vectorsPerPosition; v++)
                {
                    var vector = xs.Slice((s * vectorsPerPosition + v) * headDim, headDim);
                    for (int i = 0; i < half; i++)
                    {
                        T a = vector[i], b = vector[i + half];
                        vector[i] = a * cos[i] - b * sin[i];
                        vector[i + half] = b * cos[i] + a * sin[i];
                    }
                }
            }
        });
    }
}
