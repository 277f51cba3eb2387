using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Leaves the tensor-parallel region by concatenating the ranks' [rows, cols] blocks along the last
/// dimension. Forward: all-gather to [rows, TP * cols]. Backward: keep this rank's block of the gradient.
/// Identity both ways at TP = 1.
/// </summary>
public sealed class GatherFromTensorParallelRegion : IDisposable
{
    private readonly ParallelContext _context;
    private readonly string _source;
    private readonly TensorSlot _full;
    private readonly TensorSlot _scratch;
    private readonly TensorSlot _local;
    private int _rows;
    private int _localCols;

    public GatherFromTensorParallelRegion(ParallelContext context, string source)
    {
        _context = context;
        _source = source;
        _full = new TensorSlot(context.Backend);
        _scratch = new TensorSlot(context.Backend);
        _local = new TensorSlot(context.Backend);
    }

    /// <summary>[rows, TP * localCols] from this rank's [rows, localCols].</summary>
    public Tensor Forward(Tensor input, int rows, int localCols)
    {
        Check.Matrix(input, input.DType, rows, localCols, _source, "input");
        _rows = rows;
        _localCols = localCols;
        int size = _context.TensorParallelSize;
        if (size == 1)
        {
            return input;
        }
        long count = (long)size * rows * localCols;
        var full = _full.Get(input.DType, count);
        LastDimension.Gather(_context, full, _scratch.Get(input.DType, count), input, rows, localCols, _source, CommunicationPhase.Forward);
        return full;
    }

    /// <summary>This rank's block [rows, localCols] of the gradient [rows, TP * localCols].</summary>
    public Tensor Backward(Tensor outputGrad)
    {
        Check.ForwardDone(_localCols > 0, _source);
        int size = _context.TensorParallelSize;
        Check.Matrix(outputGrad, outputGrad.DType, _rows, (long)size * _localCols, _source, "output gradient");
        if (size == 1)
        {
            return outputGrad;
        }
        var local = _local.Get(outputGrad.DType, (long)_rows * _localCols);
        LastDimension.Split(_context, local, outputGrad, _rows, size * _localCols);
        return local;
    }

    public void Dispose()
    {
        _full.Dispose();
        _scratch.Dispose();
        _local.Dispose();
    }
}
