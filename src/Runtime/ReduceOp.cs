namespace ModelParallel.Runtime;

/// <summary>Reduction applied by all-reduce, reduce and reduce-scatter.</summary>
public enum ReduceOp
{
    Sum,
    Prod,
    Max,
    Min,
    Avg,
}
