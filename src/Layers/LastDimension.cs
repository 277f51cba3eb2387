using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>Splitting and gathering [rows, cols] activations along their last dimension across the tensor-parallel group.</summary>
internal static class LastDimension
{
    /// <summary>local[rows, cols / TP] = this rank's block of columns of full[rows, cols].</summary>
    public static void Split(ParallelContext context, Tensor local, Tensor full, int rows, int cols)
    {
        int localCols = cols / context.TensorParallelSize;
        context.Kernels.Copy2D(local, localCols, Offset(full, (long)context.TensorParallelRank * localCols), cols, rows, localCols);
    }

    /// <summary>
    /// full[rows, TP * localCols] = the ranks' local[rows, localCols] side by side: an all-gather into
    /// <paramref name="scratch"/> (rank blocks one after another) and one strided copy per rank.
    /// </summary>
    public static void Gather(ParallelContext context, Tensor full, Tensor scratch, Tensor local, int rows, int localCols,
        string source, CommunicationPhase phase)
    {
        int size = context.TensorParallelSize;
        context.AllGather(local, scratch, source, phase);
        for (int r = 0; r < size; r++)
        {
            context.Kernels.Copy2D(Offset(full, (long)r * localCols), size * localCols,
                scratch.Slice((long)r * rows * localCols, (long)rows * localCols), localCols, rows, localCols);
        }
    }

    /// <summary>The view of <paramref name="t"/> from element <paramref name="offset"/> to its end.</summary>
    public static Tensor Offset(Tensor t, long offset) => t.Slice(offset, t.Count - offset);
}
