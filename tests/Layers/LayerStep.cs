using ModelParallel.Layers;
using ModelParallel.Runtime;

namespace ModelParallel.Tests.Layers;

/// <summary>A layer under test with its forward and backward, whatever their exact signatures.</summary>
internal sealed record LayerStep(IParallelLayer Layer, Func<Tensor, TokenShape, Tensor> Forward, Func<Tensor, Tensor> Backward)
{
    public static LayerStep Of(ColumnParallelLinear l) => new(l, l.Forward, l.Backward);

    public static LayerStep Of(RowParallelLinear l) => new(l, l.Forward, l.Backward);

    public static LayerStep Of(ParallelMlp l) => new(l, l.Forward, l.Backward);

    public static LayerStep Of(ParallelAttention l) => new(l, l.Forward, l.Backward);

    public static LayerStep Of(TransformerLayer l) => new(l, l.Forward, l.Backward);
}
