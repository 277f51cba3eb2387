using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Megatron's g: leaves the tensor-parallel region by summing the ranks' partial outputs.
/// Forward: all-reduce (sum), in place. Backward: identity. Identity both ways at TP = 1.
/// </summary>
public sealed class ReduceFromTensorParallelRegion
{
    private readonly ParallelContext _context;
    private readonly string _source;

    public ReduceFromTensorParallelRegion(ParallelContext context, string source)
    {
        _context = context;
        _source = source;
    }

    /// <summary>Sums <paramref name="partial"/> over the group in place and returns it.</summary>
    public Tensor Forward(Tensor partial)
    {
        if (_context.TensorParallelSize > 1)
        {
            _context.AllReduce(_context.TensorParallel, partial, ReduceOp.Sum, _source, CommunicationPhase.Forward);
        }
        return partial;
    }

    public Tensor Backward(Tensor outputGrad) => outputGrad;
}
