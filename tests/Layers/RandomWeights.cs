using ModelParallel.Layers;
using ModelParallel.Runtime;

namespace ModelParallel.Tests.Layers;

/// <summary>Random full weights for every parameter of a layer, scaled so activations stay of order one.</summary>
internal static class RandomWeights
{
    /// <summary>Builds the layer once (one rank, float64) to learn its parameters, then draws their full weights.</summary>
    public static Dictionary<string, double[]> For(Random rng, Func<ParallelContext, IParallelLayer> build)
    {
        var shapes = TestWorld.Cpu(DType.Float64).Collect(1, ctx =>
        {
            using var layer = build(new ParallelContext(ctx.Backend, ctx.World));
            return layer.Parameters.Select(p => (p.Name, p.Rows, p.Columns)).ToArray();
        })[0];
        return shapes.ToDictionary(s => s.Name, s => Draw(rng, s.Name, s.Rows, s.Columns));
    }

    private static double[] Draw(Random rng, string name, int rows, int cols)
    {
        int count = rows * cols;
        if (name.EndsWith("layernorm.weight", StringComparison.Ordinal))
        {
            return Support.Numerics.RandomArray(rng, count, 0.2).Select(v => 1 + v).ToArray();
        }
        if (cols == 1 || name.Contains("word_embeddings", StringComparison.Ordinal))
        {
            return Support.Numerics.RandomArray(rng, count, cols == 1 ? 0.1 : 1);
        }
        return Support.Numerics.RandomArray(rng, count, 1 / Math.Sqrt(cols));
    }
}
