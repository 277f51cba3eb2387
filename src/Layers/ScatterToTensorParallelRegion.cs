using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Enters the tensor-parallel region by splitting [rows, cols] along the last dimension.
/// Forward: keep this rank's block of cols / TP columns. Backward: all-gather the blocks along the last
/// dimension. Identity both ways at TP = 1.
/// </summary>
public sealed class ScatterToTensorParallelRegion : IDisposable
{
    private readonly ParallelContext _context;
    private readonly string _source;
    private readonly TensorSlot _local;
    private readonly TensorSlot _full;
    private readonly TensorSlot _scratch;
    private int _rows;
    private int _cols;

    public ScatterToTensorParallelRegion(ParallelContext context, string source)
    {
        _context = context;
        _source = source;
        _local = new TensorSlot(context.Backend);
        _full = new TensorSlot(context.Backend);
        _scratch = new TensorSlot(context.Backend);
    }

    /// <summary>[rows, cols / TP] from input [rows, cols]; cols must be divisible by TP.</summary>
    public Tensor Forward(Tensor input, int rows, int cols)
    {
        int size = _context.TensorParallelSize;
        int localCols = Check.Divide(cols, size, $"{_source}: columns to scatter");
        Check.Matrix(input, input.DType, rows, cols, _source, "input");
        _rows = rows;
        _cols = cols;
        if (size == 1)
        {
            return input;
        }
        var local = _local.Get(input.DType, (long)rows * localCols);
        LastDimension.Split(_context, local, input, rows, cols);
        return local;
    }

    /// <summary>[rows, cols] from this rank's gradient block [rows, cols / TP].</summary>
    public Tensor Backward(Tensor outputGrad)
    {
        Check.ForwardDone(_cols > 0, _source);
        int size = _context.TensorParallelSize;
        int localCols = _cols / size;
        Check.Matrix(outputGrad, outputGrad.DType, _rows, localCols, _source, "output gradient");
        if (size == 1)
        {
            return outputGrad;
        }
        var full = _full.Get(outputGrad.DType, (long)_rows * _cols);
        var scratch = _scratch.Get(outputGrad.DType, (long)_rows * _cols);
        LastDimension.Gather(_context, full, scratch, outputGrad, _rows, localCols, _source, CommunicationPhase.Backward);
        return full;
    }

    public void Dispose()
    {
        _local.Dispose();
        _full.Dispose();
        _scratch.Dispose();
    }
}
