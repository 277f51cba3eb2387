using ModelParallel.Runtime;

namespace ModelParallel.Cli;

/// <summary>Results computed on the host in float64, and how far a result is from one.</summary>
internal static class HostReference
{
    /// <summary>op over the ranks' <paramref name="inputs"/>, element by element.</summary>
    public static double[] Reduce(double[][] inputs, ReduceOp op) =>
        [.. Enumerable.Range(0, inputs[0].Length).Select(i =>
        {
            var column = inputs.Select(x => x[i]);
            return op switch
            {
                ReduceOp.Sum => column.Sum(),
                ReduceOp.Prod => column.Aggregate(1.0, (p, v) => p * v),
                ReduceOp.Max => column.Max(),
                ReduceOp.Min => column.Min(),
                ReduceOp.Avg => column.Average(),
                _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduction"),
            };
        })];

    /// <summary>||value - expected|| / ||expected|| (||value - expected|| when expected is zero); NaN when not finite.</summary>
    public static double RelativeError(double[] value, double[] expected)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < value.Length; i++)
        {
            double d = value[i] - expected[i];
            diff += d * d;
            norm += expected[i] * expected[i];
        }
        double err = norm == 0 ? Math.Sqrt(diff) : Math.Sqrt(diff / norm);
        return double.IsFinite(err) ? err : double.NaN;
    }
}
