namespace ModelParallel.Tests.Layers;

/// <summary>Host-side splitting and joining of row-major matrices.</summary>
internal static class HostArrays
{
    /// <summary>Rows [rank * rows / parts, (rank + 1) * rows / parts) of full[rows, cols].</summary>
    public static double[] Rows(double[] full, int cols, int rank, int parts)
    {
        int rows = full.Length / cols / parts;
        return full.AsSpan(rank * rows * cols, rows * cols).ToArray();
    }

    /// <summary>Columns [rank * cols / parts, (rank + 1) * cols / parts) of full[rows, cols].</summary>
    public static double[] Columns(double[] full, int cols, int rank, int parts)
    {
        int rows = full.Length / cols, local = cols / parts;
        var result = new double[rows * local];
        for (int i = 0; i < rows; i++)
        {
            full.AsSpan(i * cols + rank * local, local).CopyTo(result.AsSpan(i * local, local));
        }
        return result;
    }

    public static double[] ConcatRows(IEnumerable<double[]> parts) => parts.SelectMany(p => p).ToArray();

    /// <summary>[rows, sum of widths] from blocks [rows, width] side by side.</summary>
    public static double[] ConcatColumns(IReadOnlyList<double[]> parts, int rows)
    {
        var result = new List<double>();
        for (int i = 0; i < rows; i++)
        {
            foreach (var part in parts)
            {
                int width = part.Length / rows;
                result.AddRange(part.AsSpan(i * width, width).ToArray());
            }
        }
        return [.. result];
    }
}
