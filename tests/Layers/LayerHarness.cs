using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Layers;

/// <summary>Runs a layer's forward and backward on every rank of a world and compares with a float64 single-rank reference.</summary>
internal static class LayerHarness
{
    /// <summary>
    /// On each rank: builds the layer, loads <paramref name="weights"/>, runs forward on the rank's input and
    /// backward on the rank's output gradient, finalizes the gradients and saves them full.
    /// </summary>
    public static LayerRun[] Run(TestWorld world, int tp, bool sequenceParallel, Func<ParallelContext, LayerStep> build,
        IReadOnlyDictionary<string, double[]> weights, TokenShape shape, Func<int, double[]> inputOf, Func<int, double[]> outputGradOf) =>
        world.Collect(tp, ctx =>
        {
            var context = new ParallelContext(ctx.Backend, ctx.World, sequenceParallel);
            var step = build(context);
            using var layer = step.Layer;
            layer.Load(weights);
            using var x = TestTensors.Upload(ctx.Backend, inputOf(ctx.Rank));
            var y = TestTensors.Download(step.Forward(x, shape));
            using var dy = TestTensors.Upload(ctx.Backend, outputGradOf(ctx.Rank));
            var dx = TestTensors.Download(step.Backward(dy));
            layer.FinalizeGradients();
            return new LayerRun(y, dx, layer.SaveGradients(), layer.Communication(CommunicationPhase.Forward),
                layer.Communication(CommunicationPhase.Backward), layer.Communication(CommunicationPhase.GradientSync));
        });

    /// <summary>
    /// For a layer mapping [tokens, hidden] to [tokens, hidden] (token shards with sequence parallelism): random
    /// weights, input and output gradient (held exactly by the world's compute dtype); the reference at TP = 1 in float64 on the CPU; the run at
    /// <paramref name="tp"/> on <paramref name="world"/>; output, input gradient and every parameter gradient of
    /// every rank compared within <paramref name="tol"/>. Returns the runs for further checks.
    /// </summary>
    public static LayerRun[] AssertMatchesReference(TestWorld world, int tp, bool sequenceParallel,
        Func<ParallelContext, LayerStep> build, TokenShape shape, int hidden, double tol)
    {
        var rng = TestRandom.Create();
        var weights = world.Representable(RandomWeights.For(rng, c => build(c).Layer));
        var input = world.Representable(Numerics.RandomArray(rng, shape.Tokens * hidden));
        var outputGrad = world.Representable(Numerics.RandomArray(rng, shape.Tokens * hidden));
        var reference = Run(TestWorld.Cpu(DType.Float64), 1, false, build, weights, shape, _ => input, _ => outputGrad)[0];
        Func<double[], Func<int, double[]>> shardOf = full => sequenceParallel ? r => HostArrays.Rows(full, hidden, r, tp) : _ => full;
        var runs = Run(world, tp, sequenceParallel, build, weights, shape, shardOf(input), shardOf(outputGrad));
        AssertRuns(runs, reference, sequenceParallel, tol, $"TP={tp}{(sequenceParallel ? " SP" : "")}");
        return runs;
    }

    /// <summary>Outputs and input gradients (joined from token shards with sequence parallelism) and every gradient of every rank.</summary>
    public static void AssertRuns(LayerRun[] runs, LayerRun reference, bool tokenSharded, double tol, string what)
    {
        if (tokenSharded)
        {
            Numerics.AssertClose(HostArrays.ConcatRows(runs.Select(r => r.Output)), reference.Output, tol, $"{what} output");
            Numerics.AssertClose(HostArrays.ConcatRows(runs.Select(r => r.InputGrad)), reference.InputGrad, tol, $"{what} input gradient");
        }
        else
        {
            for (int r = 0; r < runs.Length; r++)
            {
                Numerics.AssertClose(runs[r].Output, reference.Output, tol, $"{what} rank {r} output");
                Numerics.AssertClose(runs[r].InputGrad, reference.InputGrad, tol, $"{what} rank {r} input gradient");
            }
        }
        AssertGrads(runs.Select(r => r.Grads).ToArray(), reference.Grads, tol, what);
    }

    /// <summary>Every parameter gradient of every rank against the reference.</summary>
    public static void AssertGrads(Dictionary<string, double[]>[] grads, Dictionary<string, double[]> reference, double tol, string what)
    {
        for (int r = 0; r < grads.Length; r++)
        {
            Assert.Equal(reference.Keys.Order(), grads[r].Keys.Order());
            foreach (var (name, expected) in reference)
            {
                Numerics.AssertClose(grads[r][name], expected, tol, $"{what} rank {r} gradient of {name}");
            }
        }
    }
}
