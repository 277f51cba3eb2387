using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;

namespace ModelParallel.Tests.Layers;

/// <summary>Runs a body on every rank of a world of the given size, with some backend.</summary>
internal delegate void WorldRunner(int ranks, Action<RankContext> body);

internal static class Worlds
{
    /// <summary>Threads as ranks on the CPU backend in <paramref name="compute"/>.</summary>
    public static WorldRunner Cpu(DType compute) => (ranks, body) => CpuWorld.Run(ranks, compute, body);

    /// <summary>Each rank's result, in rank order.</summary>
    public static T[] Collect<T>(WorldRunner world, int ranks, Func<RankContext, T> body)
    {
        var results = new T[ranks];
        world(ranks, ctx => results[ctx.Rank] = body(ctx));
        return results;
    }
}
