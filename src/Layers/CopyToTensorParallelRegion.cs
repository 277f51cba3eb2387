using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Megatron's f: enters the tensor-parallel region with an input every rank holds whole.
/// Forward: identity. Backward: all-reduce (sum) of the input gradient, in place, since each rank's
/// part of the region contributes to it. Identity both ways at TP = 1.
/// </summary>
public sealed class CopyToTensorParallelRegion
{
    private readonly ParallelContext _context;
    private readonly string _source;

    public CopyToTensorParallelRegion(ParallelContext context, string source)
    {
        _context = context;
        _source = source;
    }

    public Tensor Forward(Tensor input) => input;

    /// <summary>Sums <paramref name="inputGrad"/> over the group in place and returns it.</summary>
    public Tensor Backward(Tensor inputGrad)
    {
        if (_context.TensorParallelSize > 1)
        {
            _context.AllReduce(_context.TensorParallel, inputGrad, ReduceOp.Sum, _source, CommunicationPhase.Backward);
        }
        return inputGrad;
    }
}
