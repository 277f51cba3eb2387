using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>What every layer can do through its parameters and its context.</summary>
public static class ParallelLayerExtensions
{
    public static void ZeroGrad(this IParallelLayer layer)
    {
        foreach (var p in layer.Parameters)
        {
            p.ZeroGrad();
        }
    }

    /// <summary>
    /// Sums the gradients that several ranks hold partial sums of: the norm weights (and the other
    /// replicated parameters) under sequence parallelism over the tensor-parallel group, and the
    /// key/value rows of replicated query groups over their replicas. One all-reduce per group, the
    /// gradients packed together (Megatron's finalize step). Call once after the last backward of a step.
    /// </summary>
    public static void FinalizeGradients(this IParallelLayer layer)
    {
        var context = layer.Context;
        var kernels = context.Kernels;
        foreach (var group in layer.Parameters.Where(p => p.Reduction is not null).GroupBy(p => p.Reduction!.Group))
        {
            var parts = group.Select(p => (Grad: p.Grad, Reduction: p.Reduction!)).ToArray();
            long total = parts.Sum(x => x.Reduction.Count);
            using var packed = context.Backend.Allocate(context.Backend.GradType, total);
            long offset = 0;
            foreach (var (grad, r) in parts)
            {
                Copy(kernels, packed.Slice(offset, r.Count), grad.Slice(r.Offset, r.Count));
                offset += r.Count;
            }
            context.AllReduce(group.Key, packed, ReduceOp.Sum, layer.Name, CommunicationPhase.GradientSync);
            offset = 0;
            foreach (var (grad, r) in parts)
            {
                Copy(kernels, grad.Slice(r.Offset, r.Count), packed.Slice(offset, r.Count));
                offset += r.Count;
            }
        }
    }

    /// <summary>Loads full weights by parameter name; every parameter must be present.</summary>
    public static void Load(this IParallelLayer layer, IReadOnlyDictionary<string, double[]> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        foreach (var p in layer.Parameters)
        {
            if (!weights.TryGetValue(p.Name, out var full))
            {
                throw new ArgumentException($"{layer.Name}: no weight named '{p.Name}'", nameof(weights));
            }
            p.Load(full);
        }
    }

    /// <summary>Full weights by parameter name (a collective over the tensor-parallel group).</summary>
    public static Dictionary<string, double[]> Save(this IParallelLayer layer) =>
        layer.Parameters.ToDictionary(p => p.Name, p => p.Save());

    /// <summary>Full gradients by parameter name (a collective over the tensor-parallel group).</summary>
    public static Dictionary<string, double[]> SaveGradients(this IParallelLayer layer) =>
        layer.Parameters.ToDictionary(p => p.Name, p => p.SaveGrad());

    /// <summary>Collectives the layer (and the layers inside it) issued in <paramref name="phase"/> since the log was cleared.</summary>
    public static CommunicationSummary Communication(this IParallelLayer layer, CommunicationPhase phase) =>
        layer.Context.Log.Summarize(phase, layer.Name);

    /// <summary>dst = src, as one row of a strided copy (same dtype and count).</summary>
    private static void Copy(IKernels kernels, Tensor dst, Tensor src)
    {
        int count = checked((int)src.Count);
        kernels.Copy2D(dst, count, src, count, 1, count);
    }
}
