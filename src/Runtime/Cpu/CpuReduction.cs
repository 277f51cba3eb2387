using System.Numerics;
using System.Numerics.Tensors;

namespace ModelParallel.Runtime.Cpu;

/// <summary>Element-wise reductions over the ranks' tensors, in rank order so that every rank gets identical bits.</summary>
internal static class CpuReduction
{
    /// <summary>op over <paramref name="sources"/> of elements [offset, offset + count), as a new array of their element type.</summary>
    internal static Array Combine(CpuTensor[] sources, int offset, int count, ReduceOp op) => sources[0].DType switch
    {
        DType.Float32 => Combine<float>(sources, offset, count, op),
        DType.Float64 => Combine<double>(sources, offset, count, op),
        DType.Int32 => Combine<int>(sources, offset, count, op),
        var other => throw new ArgumentException($"cannot reduce {other} tensors"),
    };

    private static T[] Combine<T>(CpuTensor[] sources, int offset, int count, ReduceOp op)
        where T : INumber<T>
    {
        var acc = new T[count];
        sources[0].Span<T>().Slice(offset, count).CopyTo(acc);
        for (int q = 1; q < sources.Length; q++)
        {
            ReadOnlySpan<T> x = sources[q].Span<T>().Slice(offset, count);
            switch (op)
            {
                case ReduceOp.Sum or ReduceOp.Avg: TensorPrimitives.Add(acc, x, acc); break;
                case ReduceOp.Prod: TensorPrimitives.Multiply(acc, x, acc); break;
                case ReduceOp.Max: TensorPrimitives.Max(acc, x, acc); break;
                case ReduceOp.Min: TensorPrimitives.Min(acc, x, acc); break;
                default: throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduction");
            }
        }
        if (op == ReduceOp.Avg)
        {
            TensorPrimitives.Divide(acc, T.CreateChecked(sources.Length), acc);
        }
        return acc;
    }
}
