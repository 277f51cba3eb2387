using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Sequence parallelism's exit from the tensor-parallel region: the ranks' partial [rows, cols] are
/// summed and each rank keeps its token shard [rows / TP, cols]. Forward: reduce-scatter (sum) along
/// tokens. Backward: all-gather along tokens. Identity both ways at TP = 1.
/// </summary>
public sealed class ReduceScatterToSequenceParallelRegion : IDisposable
{
    private readonly ParallelContext _context;
    private readonly string _source;
    private readonly TensorSlot _shard;
    private readonly TensorSlot _full;
    private int _rows;
    private int _cols;

    public ReduceScatterToSequenceParallelRegion(ParallelContext context, string source)
    {
        _context = context;
        _source = source;
        _shard = new TensorSlot(context.Backend);
        _full = new TensorSlot(context.Backend);
    }

    /// <summary>This rank's token shard [rows / TP, cols] of the sum over the group of <paramref name="partial"/> [rows, cols].</summary>
    public Tensor Forward(Tensor partial, int rows, int cols)
    {
        int size = _context.TensorParallelSize;
        int shardRows = Check.Divide(rows, size, $"{_source}: tokens to reduce-scatter");
        Check.Matrix(partial, partial.DType, rows, cols, _source, "input");
        _rows = rows;
        _cols = cols;
        if (size == 1)
        {
            return partial;
        }
        var shard = _shard.Get(partial.DType, (long)shardRows * cols);
        _context.ReduceScatter(partial, shard, _source, CommunicationPhase.Forward);
        return shard;
    }

    /// <summary>The whole gradient [rows, cols] from the ranks' token shards.</summary>
    public Tensor Backward(Tensor outputGrad)
    {
        Check.ForwardDone(_cols > 0, _source);
        int size = _context.TensorParallelSize;
        Check.Matrix(outputGrad, outputGrad.DType, _rows / size, _cols, _source, "output gradient");
        if (size == 1)
        {
            return outputGrad;
        }
        var full = _full.Get(outputGrad.DType, (long)_rows * _cols);
        _context.AllGather(outputGrad, full, _source, CommunicationPhase.Backward);
        return full;
    }

    public void Dispose()
    {
        _shard.Dispose();
        _full.Dispose();
    }
}
