namespace ModelParallel.Layers;

/// <summary>
/// Which part of a full [rows, cols] weight one rank holds: the full rows listed in <see cref="Rows"/>
/// (local row i is full row Rows[i]) restricted to columns [ColumnStart, ColumnStart + Columns).
/// Column-parallel weights list a subset of rows, row-parallel weights take a block of columns,
/// replicated ones everything.
/// </summary>
internal sealed record Shard(int[] Rows, int ColumnStart, int Columns)
{
    public long Count => (long)Rows.Length * Columns;

    public static Shard Whole(int rows, int cols) => new(Enumerable.Range(0, rows).ToArray(), 0, cols);

    /// <summary>Rows [rank * rows / parts, (rank + 1) * rows / parts).</summary>
    public static Shard RowBlock(int rows, int cols, int rank, int parts) =>
        new(Enumerable.Range(rank * (rows / parts), rows / parts).ToArray(), 0, cols);

    /// <summary>Columns [rank * cols / parts, (rank + 1) * cols / parts) of every row.</summary>
    public static Shard ColumnBlock(int rows, int cols, int rank, int parts) =>
        new(Enumerable.Range(0, rows).ToArray(), rank * (cols / parts), cols / parts);

    public bool IsWhole(int rows, int cols) =>
        ColumnStart == 0 && Columns == cols && Rows.Length == rows && Rows.Select((r, i) => r == i).All(b => b);

    /// <summary>local = this shard of <paramref name="full"/> (row-major, <paramref name="fullCols"/> wide).</summary>
    public void Extract(ReadOnlySpan<double> full, int fullCols, Span<double> local)
    {
        for (int i = 0; i < Rows.Length; i++)
        {
            full.Slice(Rows[i] * fullCols + ColumnStart, Columns).CopyTo(local.Slice(i * Columns, Columns));
        }
    }

    /// <summary>Writes <paramref name="local"/> into its place in <paramref name="full"/>.</summary>
    public void Insert(ReadOnlySpan<double> local, int fullCols, Span<double> full)
    {
        for (int i = 0; i < Rows.Length; i++)
        {
            local.Slice(i * Columns, Columns).CopyTo(full.Slice(Rows[i] * fullCols + ColumnStart, Columns));
        }
    }
}
