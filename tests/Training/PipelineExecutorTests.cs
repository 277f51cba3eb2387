using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Layers;
using ModelParallel.Tests.Support;
using ModelParallel.Training.Pipeline;

namespace ModelParallel.Tests.Training;

/// <summary>
/// Every schedule on the real layers, threads as ranks on the CPU in float64: the pipelined step's loss and every
/// parameter gradient equal the one-rank model's on the whole global batch (the micro-batches side by side).
/// </summary>
public class PipelineExecutorTests
{
    private const double Tol = 1e-12;

    private static readonly TransformerConfig Layer = new(32, AttentionHeads: 4, QueryGroups: 2, FfnHiddenSize: 64, RotaryBase: 20000);

    /// <summary>A micro-batch: sequence 4, 2 sequences.</summary>
    private static readonly TokenShape Micro = new(4, 2);

    public static TheoryData<string, int, int, int, bool, int, bool> Cases()
    {
        var data = new TheoryData<string, int, int, int, bool, int, bool>();
        foreach (string kind in new[] { "gpipe", "1f1b", "zb-h1" })
        {
            data.Add(kind, 2, 3, 1, false, 1, false);
            data.Add(kind, 2, 4, 2, true, 1, true);
            data.Add(kind, 4, 5, 1, false, 1, true);
            data.Add(kind, 4, 4, 2, false, 1, false);
        }
        data.Add("interleaved-1f1b", 2, 4, 1, false, 2, false);
        data.Add("interleaved-1f1b", 2, 4, 2, true, 2, true);
        data.Add("interleaved-1f1b", 4, 8, 1, false, 2, true);
        data.Add("interleaved-1f1b", 4, 4, 2, false, 2, false);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTheOneRankModel(string kind, int pp, int m, int tp, bool sp, int v, bool tied)
    {
        var config = new GptConfig(61, 8, Layer, tied);
        var layout = PipelineLayout.Even(config.Layers, pp * v);
        AssertMatchesOneRank(ScheduleKinds.Parse(kind), pp, m, tp, sp, v, config, layout, Cpu, Micro, Tol);
    }

    /// <summary>Uneven layouts: empty or short end stages, as users give them to make room for the embedding and output layer.</summary>
    [Theory]
    [InlineData("1f1b", 4, new[] { 1, 3, 3, 1 }, false)]
    [InlineData("gpipe", 2, new[] { 0, 8 }, true)]
    [InlineData("1f1b", 3, new[] { 3, 4, 1 }, true)]
    public void UnevenLayouts(string kind, int pp, int[] counts, bool tied)
    {
        var config = new GptConfig(61, 8, Layer, tied);
        AssertMatchesOneRank(ScheduleKinds.Parse(kind), pp, 3, 1, false, 1, config, PipelineLayout.Explicit(counts, 8, pp), Cpu, Micro, Tol);
    }

    /// <summary>Full recomputation of the first layers of every stage changes no number.</summary>
    [Theory]
    [InlineData("gpipe", 2, 3, 1, false, 1, 4)]
    [InlineData("1f1b", 2, 4, 2, true, 1, 2)]
    [InlineData("zb-h1", 4, 5, 1, false, 1, 1)]
    [InlineData("interleaved-1f1b", 2, 4, 2, false, 2, 1)]
    public void RecomputationChangesNothing(string kind, int pp, int m, int tp, bool sp, int v, int recompute)
    {
        var config = new GptConfig(61, 8, Layer, ShareEmbeddingsAndOutputWeights: true);
        AssertMatchesOneRank(ScheduleKinds.Parse(kind), pp, m, tp, sp, v, config, PipelineLayout.Even(8, pp * v), Cpu, Micro, Tol,
            recompute: recompute);
    }

    /// <summary>
    /// Recomputing every layer of a stage keeps one set of layer activations instead of one per micro-batch in flight:
    /// the measured peak of a GPipe step with 8 micro-batches drops by more than half.
    /// </summary>
    [Fact]
    public void RecomputationLowersThePeakMemory()
    {
        var config = new GptConfig(61, 8, Layer);
        var schedule = PipelineCommunication.Insert(ScheduleGenerator.Create(ScheduleKind.GPipe, 2, 8));
        var ids = Enumerable.Range(0, 8).Select(i => Enumerable.Range(0, Micro.Tokens).Select(t => (t * 7 + i) % 61).ToArray()).ToArray();
        long Peak(int recompute)
        {
            var peaks = new long[2];
            CpuWorld.Run(2, DType.Float32, ctx =>
            {
                using var groups = ProcessGroups.Create(ctx.World, 1, 2);
                using var executor = new PipelineExecutor(new ParallelContext(ctx.Backend, groups.TensorParallel), groups.PipelineParallel,
                    config, PipelineLayout.Even(8, 2), schedule, Micro, recomputeLayers: recompute);
                long before = ctx.Backend.AllocatorStats.BytesInUse;
                ctx.Backend.ResetPeak();
                executor.Step(ids, ids);
                peaks[ctx.Rank] = ctx.Backend.AllocatorStats.PeakBytesInUse - before;
            });
            return peaks.Max();
        }
        long full = Peak(0), recomputed = Peak(4);
        Assert.True(recomputed * 2 < full, $"peak activation bytes {recomputed} with 4 of 4 layers recomputed, {full} without");
    }

    /// <summary>
    /// Activations held: the executor makes a replica of a stage per micro-batch in flight, and their count on each rank
    /// is the simulator's peak (GPipe holds all m micro-batches on the first stage, 1F1B at most p).
    /// </summary>
    [Theory]
    [InlineData("gpipe", 4, 8, 1, new[] { 8, 8, 8, 8 })]
    [InlineData("1f1b", 4, 8, 1, new[] { 4, 3, 2, 1 })]
    [InlineData("1f1b", 4, 2, 1, new[] { 2, 2, 2, 1 })]
    [InlineData("zb-h1", 4, 8, 1, null)]
    [InlineData("interleaved-1f1b", 2, 4, 2, null)]
    public void ReplicasFollowTheSimulatedPeakInFlight(string kind, int pp, int m, int v, int[]? expected)
    {
        var config = new GptConfig(61, 8, Layer);
        var schedule = PipelineCommunication.Insert(ScheduleGenerator.Create(ScheduleKinds.Parse(kind), pp, m, v));
        var simulation = ScheduleSimulator.Simulate(schedule, StageCosts.ZeroBubblePaper);
        var simulated = simulation.PeakInFlight;
        if (expected is not null)
        {
            Assert.Equal(expected, simulated);
        }
        // Replicas are kept per chunk: a rank holds the sum over its chunks of each chunk's own peak, which with v > 1
        // can exceed the simultaneous peak the simulator reports.
        var perChunk = Enumerable.Range(0, pp).Select(r => Enumerable.Range(0, v).Sum(c => ChunkPeak(simulation.Timelines[r], c * pp + r))).ToArray();
        Assert.All(Enumerable.Range(0, pp), r => Assert.True(perChunk[r] >= simulated[r]));
        var peaks = new int[pp];
        var ids = Enumerable.Range(0, m).Select(_ => new int[Micro.Tokens]).ToArray();
        CpuWorld.Run(pp, DType.Float32, ctx =>
        {
            using var groups = ProcessGroups.Create(ctx.World, 1, pp);
            using var executor = new PipelineExecutor(new ParallelContext(ctx.Backend, groups.TensorParallel), groups.PipelineParallel,
                config, PipelineLayout.Even(8, pp * v), schedule, Micro);
            executor.Step(ids, ids);
            peaks[ctx.Rank] = executor.PeakInFlight.Sum();
        });
        Assert.Equal(perChunk, peaks);
    }

    /// <summary>The most micro-batches stage <paramref name="stage"/> holds at once in a simulated timeline: from F's start to the end of B, or of W.</summary>
    private static int ChunkPeak(IReadOnlyList<TimedAction> timeline, int stage)
    {
        var events = timeline.Where(t => t.Action.Stage == stage && t.Action.Kind is ActionKind.Forward or ActionKind.Backward or ActionKind.BackwardWeight)
            .Select(t => t.Action.Kind == ActionKind.Forward ? (Time: t.Start, Delta: 1) : (Time: t.End, Delta: -1))
            .OrderBy(e => e.Time).ThenBy(e => e.Delta);
        int held = 0, peak = 0;
        foreach (var (_, delta) in events)
        {
            held += delta;
            peak = Math.Max(peak, held);
        }
        return peak;
    }

    /// <summary>Threads as ranks on the CPU in float64.</summary>
    internal static readonly TestWorld Cpu = TestWorld.Cpu(DType.Float64);

    /// <summary>
    /// Runs <paramref name="kind"/> on <paramref name="world"/> and checks the loss and every gradient against the
    /// one-rank CPU model in float64 within <paramref name="tol"/>; returns the gradients by name.
    /// </summary>
    internal static Dictionary<string, double[]> AssertMatchesOneRank(ScheduleKind kind, int pp, int m, int tp, bool sp, int v,
        GptConfig config, PipelineLayout layout, TestWorld world, TokenShape micro, double tol, int seed = 0, int recompute = 0)
    {
        var rng = seed == 0 ? TestRandom.Create() : new Random(seed);
        var weights = world.Representable(RandomWeights.For(rng, c => new GptModel(c, config)));
        var ids = Enumerable.Range(0, m).Select(_ => GptRun.RandomTokens(rng, micro.Tokens, config.VocabSize)).ToArray();
        var targets = Enumerable.Range(0, m).Select(_ => GptRun.RandomTokens(rng, micro.Tokens, config.VocabSize)).ToArray();
        var global = new TokenShape(micro.Sequence, micro.Batch * m);
        var reference = GptRun.Run(Cpu, 1, false, config, weights, Join(ids, micro), Join(targets, micro), global)[0];
        double referenceLoss = reference.Loss.Average();

        var schedule = PipelineCommunication.Insert(ScheduleGenerator.Create(kind, pp, m, v));
        var results = new (double Loss, Dictionary<string, double[]> Grads)[tp * pp];
        world.Run(tp * pp, ctx =>
        {
            using var groups = ProcessGroups.Create(ctx.World, tp, pp);
            var context = new ParallelContext(ctx.Backend, groups.TensorParallel, sp);
            using var executor = new PipelineExecutor(context, groups.PipelineParallel, config, layout, schedule, micro,
                recomputeLayers: recompute);
            foreach (var p in executor.Parameters)
            {
                p.Load(Padded(weights[p.Name], p, config));
            }
            var step = executor.Step(ids, targets);
            results[ctx.Rank] = (step.Loss, executor.SaveGradients());
        });

        string what = $"{kind} PP={pp} m={m} TP={tp}{(sp ? " SP" : "")} v={v} recompute {recompute}{(config.ShareEmbeddingsAndOutputWeights ? " tied" : "")} layout {layout}";
        var all = new Dictionary<string, double[]>();
        foreach (var (loss, grads) in results)
        {
            Assert.True(Math.Abs(loss - referenceLoss) <= tol * Math.Abs(referenceLoss), $"{what}: loss {loss} vs {referenceLoss}");
            foreach (var (name, grad) in grads)
            {
                var expected = reference.Grads[name];
                Numerics.AssertClose(grad[..expected.Length], expected, tol, $"{what}: gradient of {name}");
                all.TryAdd(name, grad);
            }
        }
        Assert.Equal(reference.Grads.Keys.Order(), all.Keys.Order());
        return all;
    }

    /// <summary>The full weight for a parameter whose vocabulary rows are padded to a multiple of TP (padding rows random, never used).</summary>
    private static double[] Padded(double[] full, Parameter p, GptConfig config) =>
        p.FullCount == full.Length ? full : [.. full, .. Enumerable.Repeat(0.5, (int)p.FullCount - full.Length)];

    /// <summary>Micro-batches side by side as one batch, sequence-major: token (s, j * b + i) is micro-batch j's token (s, i).</summary>
    private static int[] Join(int[][] microBatches, TokenShape micro)
    {
        int m = microBatches.Length, b = micro.Batch;
        var joined = new int[m * micro.Tokens];
        for (int j = 0; j < m; j++)
        {
            for (int s = 0; s < micro.Sequence; s++)
            {
                for (int i = 0; i < b; i++)
                {
                    joined[s * b * m + j * b + i] = microBatches[j][s * b + i];
                }
            }
        }
        return joined;
    }
}
