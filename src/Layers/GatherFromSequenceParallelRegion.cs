using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Sequence parallelism's entry into the tensor-parallel region: token shards [rows, cols] become the
/// whole [TP * rows, cols]. Forward: all-gather along tokens. Backward: reduce-scatter (sum) along tokens.
/// Identity both ways at TP = 1.
/// </summary>
public sealed class GatherFromSequenceParallelRegion : IDisposable
{
    private readonly ParallelContext _context;
    private readonly string _source;
    private readonly TensorSlot _full;
    private readonly TensorSlot _shard;
    private int _rows;
    private int _cols;

    public GatherFromSequenceParallelRegion(ParallelContext context, string source)
    {
        _context = context;
        _source = source;
        _full = new TensorSlot(context.Backend);
        _shard = new TensorSlot(context.Backend);
    }

    /// <summary>[TP * rows, cols] from this rank's token shard [rows, cols].</summary>
    public Tensor Forward(Tensor input, int rows, int cols)
    {
        Check.Matrix(input, input.DType, rows, cols, _source, "input");
        _rows = rows;
        _cols = cols;
        int size = _context.TensorParallelSize;
        if (size == 1)
        {
            return input;
        }
        var full = _full.Get(input.DType, (long)size * rows * cols);
        _context.AllGather(input, full, _source, CommunicationPhase.Forward);
        return full;
    }

    /// <summary>This rank's token shard [rows, cols] of the gradient summed over the group.</summary>
    public Tensor Backward(Tensor outputGrad)
    {
        Check.ForwardDone(_cols > 0, _source);
        int size = _context.TensorParallelSize;
        Check.Matrix(outputGrad, outputGrad.DType, (long)size * _rows, _cols, _source, "output gradient");
        if (size == 1)
        {
            return outputGrad;
        }
        var shard = _shard.Get(outputGrad.DType, (long)_rows * _cols);
        _context.ReduceScatter(outputGrad, shard, _source, CommunicationPhase.Backward);
        return shard;
    }

    public void Dispose()
    {
        _full.Dispose();
        _shard.Dispose();
    }
}
