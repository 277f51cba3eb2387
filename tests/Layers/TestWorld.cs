using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;

namespace ModelParallel.Tests.Layers;

/// <summary>A world of ranks on some backend: how to run a body on every rank, and the dtype the ranks compute in.</summary>
internal sealed record TestWorld(DType Compute, Action<int, Action<RankContext>> Run)
{
    /// <summary>Threads as ranks on the CPU backend in <paramref name="compute"/>.</summary>
    public static TestWorld Cpu(DType compute) => new(compute, (ranks, body) => CpuWorld.Run(ranks, compute, body));

    /// <summary>Each rank's result, in rank order.</summary>
    public T[] Collect<T>(int ranks, Func<RankContext, T> body)
    {
        var results = new T[ranks];
        Run(ranks, ctx => results[ctx.Rank] = body(ctx));
        return results;
    }

    /// <summary>
    /// The nearest values the compute dtype holds, so that a run and its float64 reference start from the same
    /// numbers and differ only by what the run computes.
    /// </summary>
    public double[] Representable(double[] values) => Compute switch
    {
        DType.Float32 => values.Select(v => (double)(float)v).ToArray(),
        DType.BFloat16 => values.Select(v => (double)(float)(BFloat16)(float)v).ToArray(),
        _ => values,
    };

    public Dictionary<string, double[]> Representable(IReadOnlyDictionary<string, double[]> weights) =>
        weights.ToDictionary(w => w.Key, w => Representable(w.Value));
}
