using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Layers;

/// <summary>
/// The split backward of zero-bubble pipeline schedules: Backward(dy, deferWeightGradients: true) then
/// BackwardWeights() gives bitwise the fused backward's input gradient and parameter gradients (CPU, float64);
/// after the deferred part alone the input gradient is final and the linear layers' gradients are still zero
/// (the norms' are computed with their input gradient); misuse throws naming the layer, and leaves the pending
/// weight gradients intact.
/// </summary>
public class SplitBackwardTests
{
    private const int InputSize = 32;
    private const int OutputSize = 48;
    private const int Hidden = 64;
    private static readonly TokenShape Shape = new(6, 2);
    private static readonly TestWorld World = TestWorld.Cpu(DType.Float64);

    public static TheoryData<int, bool, string> ColumnCases => Grid(["bias", "gelu", "gelu-nobias", "gather"], (sp, v) => !(sp && v == "gather"));

    public static TheoryData<int, bool, string> RowCases => Grid(["parallel", "parallel-nobias", "split-input"], (sp, v) => !(sp && v == "split-input"));

    public static TheoryData<int, bool, string> MlpCases => Grid(["swiglu", "swiglu-bias", "gelu"], (_, _) => true);

    public static TheoryData<int, bool, string> TransformerCases => Grid([nameof(TransformerLayerTests.Llama), nameof(TransformerLayerTests.Gpt2)], (_, _) => true);

    public static TheoryData<int, bool, bool> GptCases
    {
        get
        {
            var data = new TheoryData<int, bool, bool>();
            foreach (int tp in new[] { 1, 2 })
            {
                foreach (bool sp in new[] { false, true })
                {
                    data.Add(tp, sp, false);
                    data.Add(tp, sp, true);
                }
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(ColumnCases))]
    public void ColumnParallelLinearSplitMatchesFused(int tp, bool sp, string variant) => AssertSplitMatchesFused(tp, sp, c =>
        Step.Of(new ColumnParallelLinear(c, "fc", InputSize, OutputSize, bias: variant != "gelu-nobias",
            gatherOutput: variant == "gather", skipBiasAdd: false, sequenceParallel: sp,
            activation: variant.StartsWith("gelu", StringComparison.Ordinal) ? LinearActivation.Gelu : LinearActivation.None)));

    [Theory]
    [MemberData(nameof(RowCases))]
    public void RowParallelLinearSplitMatchesFused(int tp, bool sp, string variant) => AssertSplitMatchesFused(tp, sp, c =>
        Step.Of(new RowParallelLinear(c, "row", InputSize, OutputSize, bias: variant != "parallel-nobias",
            inputIsParallel: variant != "split-input", sequenceParallel: sp)));

    [Theory]
    [MemberData(nameof(MlpCases))]
    public void ParallelMlpSplitMatchesFused(int tp, bool sp, string variant) => AssertSplitMatchesFused(tp, sp, c =>
        Step.Of(new ParallelMlp(c, "mlp", Hidden, 128, variant == "gelu" ? MlpActivation.Gelu : MlpActivation.SwiGlu, bias: variant != "swiglu")));

    /// <summary>Grouped-query attention, 8 heads over 2 key/value heads; at TP 4 each key/value head is replicated on 2 ranks.</summary>
    [Theory]
    [InlineData(1, false, true)]
    [InlineData(1, true, false)]
    [InlineData(2, false, false)]
    [InlineData(2, false, true)]
    [InlineData(2, true, true)]
    [InlineData(4, true, false)]
    public void ParallelAttentionSplitMatchesFused(int tp, bool sp, bool bias) => AssertSplitMatchesFused(tp, sp, c =>
        Step.Of(new ParallelAttention(c, "attn", Hidden, heads: 8, kvHeads: 2, bias)));

    [Theory]
    [MemberData(nameof(TransformerCases))]
    public void TransformerLayerSplitMatchesFused(int tp, bool sp, string config) => AssertSplitMatchesFused(tp, sp, c =>
        Step.Of(new TransformerLayer(c, "layer", TransformerLayerTests.Config(config))));

    [Theory]
    [MemberData(nameof(GptCases))]
    public void GptModelSplitMatchesFused(int tp, bool sp, bool tied)
    {
        var config = GptModelTests.Config(96) with { ShareEmbeddingsAndOutputWeights = tied };
        var rng = TestRandom.Create();
        var weights = RandomWeights.For(rng, c => new GptModel(c, config));
        // Ids from 8 entries repeat (12 tokens), so with tied weights the order of the two accumulations shows.
        var ids = GptRun.RandomTokens(rng, Shape.Tokens, 8);
        var targets = GptRun.RandomTokens(rng, Shape.Tokens, config.VocabSize);
        var results = World.Collect(tp, ctx =>
        {
            var fused = RunGpt(ctx, sp, config, weights, ids, targets, Mode.Fused);
            var split = RunGpt(ctx, sp, config, weights, ids, targets, Mode.Split);
            return (fused, split);
        });
        foreach (var (fused, split) in results)
        {
            AssertSame(fused, split);
        }
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, true)]
    public void MisuseThrowsNamingTheLayerAndKeepsThePendingGradients(int tp, bool sp)
    {
        AssertSplitMatchesFused(tp, sp, c => Step.Of(new ColumnParallelLinear(c, "fc", InputSize, OutputSize, bias: true,
            gatherOutput: false, skipBiasAdd: false, sequenceParallel: sp, activation: LinearActivation.Gelu)), misuse: true);
        AssertSplitMatchesFused(tp, sp, c => Step.Of(new RowParallelLinear(c, "row", InputSize, OutputSize, bias: true,
            inputIsParallel: true, sequenceParallel: sp)), misuse: true);
        AssertSplitMatchesFused(tp, sp, c => Step.Of(new ParallelMlp(c, "mlp", Hidden, 128, MlpActivation.SwiGlu, bias: true)), misuse: true);
        AssertSplitMatchesFused(tp, sp, c => Step.Of(new ParallelAttention(c, "attn", Hidden, heads: 8, kvHeads: 2, bias: true)), misuse: true);
        AssertSplitMatchesFused(tp, sp, c => Step.Of(new TransformerLayer(c, "layer", TransformerLayerTests.Llama)), misuse: true);

        var config = GptModelTests.Config(96) with { ShareEmbeddingsAndOutputWeights = true };
        var rng = TestRandom.Create();
        var weights = RandomWeights.For(rng, c => new GptModel(c, config));
        var ids = GptRun.RandomTokens(rng, Shape.Tokens, 8);
        var targets = GptRun.RandomTokens(rng, Shape.Tokens, config.VocabSize);
        var results = World.Collect(tp, ctx =>
            (RunGpt(ctx, sp, config, weights, ids, targets, Mode.Fused), RunGpt(ctx, sp, config, weights, ids, targets, Mode.Misuse)));
        foreach (var (fused, split) in results)
        {
            AssertSame(fused, split);
            AssertMisuseMessages(split.Misuse, "model");
        }
    }

    /// <summary>Fused against split on every rank of a TP world, the same weights, inputs and output gradients.</summary>
    private static void AssertSplitMatchesFused(int tp, bool sp, Func<ParallelContext, Step> build, bool misuse = false)
    {
        var rng = TestRandom.Create();
        var weights = RandomWeights.For(rng, c => build(c).Layer);
        int seed = rng.Next();
        var results = World.Collect(tp, ctx =>
        {
            var fused = RunLayer(ctx, sp, build, weights, seed, Mode.Fused);
            var split = RunLayer(ctx, sp, build, weights, seed, misuse ? Mode.Misuse : Mode.Split);
            return (fused, split);
        });
        foreach (var (fused, split) in results)
        {
            AssertSame(fused, split);
            if (misuse)
            {
                AssertMisuseMessages(split.Misuse, split.Layer);
            }
        }
    }

    private static void AssertSame(Outcome fused, Outcome split)
    {
        Assert.Equal(fused.InputGrad, split.InputGrad);
        Assert.Equal(split.InputGrad, split.InputGradAfterWeights);
        Assert.Equal(fused.Grads.Keys.Order(), split.Grads.Keys.Order());
        foreach (var (name, expected) in fused.Grads)
        {
            Assert.Equal(expected, split.Grads[name]);
            if (IsNorm(name))
            {
                Assert.Equal(fused.EarlyGrads[name], split.EarlyGrads[name]);
            }
            else
            {
                Assert.All(split.EarlyGrads[name], g => Assert.Equal(0.0, g));
                Assert.Contains(expected, g => g != 0);
            }
        }
    }

    private static void AssertMisuseMessages(IReadOnlyList<string> messages, string layer)
    {
        Assert.Equal(5, messages.Count);
        Assert.All(messages, m => Assert.StartsWith(layer + ": ", m, StringComparison.Ordinal));
        Assert.Contains("no deferred backward pending", messages[0], StringComparison.Ordinal);
        Assert.Contains("backward called while", messages[1], StringComparison.Ordinal);
        Assert.Contains("backward called while", messages[2], StringComparison.Ordinal);
        Assert.Contains("forward called while", messages[3], StringComparison.Ordinal);
        Assert.Contains("no deferred backward pending", messages[4], StringComparison.Ordinal);
    }

    private static bool IsNorm(string name) => name.Contains("layernorm", StringComparison.Ordinal);

    private enum Mode { Fused, Split, Misuse }

    /// <summary>
    /// What one rank saw: the input gradient right after backward (before BackwardWeights when split) and after it,
    /// the gradients right after backward, the final (finalized) gradients, and the messages of the misuse attempts.
    /// </summary>
    private sealed record Outcome(string Layer, double[] InputGrad, double[] InputGradAfterWeights,
        Dictionary<string, double[]> EarlyGrads, Dictionary<string, double[]> Grads, List<string> Misuse);

    private static Outcome RunLayer(RankContext ctx, bool sp, Func<ParallelContext, Step> build,
        IReadOnlyDictionary<string, double[]> weights, int seed, Mode mode)
    {
        var context = new ParallelContext(ctx.Backend, ctx.World, sp);
        var step = build(context);
        using var layer = step.Layer;
        layer.Load(weights);
        var rng = new Random(seed + ctx.Rank);
        using var x = TestTensors.Upload(ctx.Backend, Numerics.RandomArray(rng, checked((int)step.InputCount(Shape))));
        using var dy = TestTensors.Upload(ctx.Backend, Numerics.RandomArray(rng, checked((int)step.OutputGradCount(Shape))));
        var misuse = new List<string>();
        if (mode == Mode.Misuse)
        {
            misuse.Add(Assert.Throws<InvalidOperationException>(step.BackwardWeights).Message);
        }
        step.Forward(x, Shape);
        var dx = mode == Mode.Fused ? step.FusedBackward(dy) : step.Backward(dy, true);
        var inputGrad = TestTensors.Download(dx);
        var early = layer.SaveGradients();
        if (mode == Mode.Misuse)
        {
            misuse.Add(Assert.Throws<InvalidOperationException>(() => step.Backward(dy, true)).Message);
            misuse.Add(Assert.Throws<InvalidOperationException>(() => step.FusedBackward(dy)).Message);
            misuse.Add(Assert.Throws<InvalidOperationException>(() => step.Forward(x, Shape)).Message);
        }
        if (mode != Mode.Fused)
        {
            step.BackwardWeights();
        }
        if (mode == Mode.Misuse)
        {
            misuse.Add(Assert.Throws<InvalidOperationException>(step.BackwardWeights).Message);
        }
        var inputGradAfter = TestTensors.Download(dx);
        layer.FinalizeGradients();
        return new Outcome(layer.Name, inputGrad, inputGradAfter, early, layer.SaveGradients(), misuse);
    }

    private static Outcome RunGpt(RankContext ctx, bool sp, GptConfig config, IReadOnlyDictionary<string, double[]> weights,
        int[] ids, int[] targets, Mode mode)
    {
        var context = new ParallelContext(ctx.Backend, ctx.World, sp);
        using var model = new GptModel(context, config);
        model.Load(weights);
        using var idTensor = TestTensors.UploadInts(ctx.Backend, ids);
        using var targetTensor = TestTensors.UploadInts(ctx.Backend, targets);
        double scale = 1.0 / Shape.Tokens;
        var misuse = new List<string>();
        if (mode == Mode.Misuse)
        {
            misuse.Add(Assert.Throws<InvalidOperationException>(model.BackwardWeights).Message);
        }
        var loss = TestTensors.Download(model.Forward(idTensor, targetTensor, Shape));
        if (mode == Mode.Fused)
        {
            model.Backward(scale);
        }
        else
        {
            model.Backward(scale, deferWeightGradients: true);
        }
        var early = model.SaveGradients();
        if (mode == Mode.Misuse)
        {
            misuse.Add(Assert.Throws<InvalidOperationException>(() => model.Backward(scale, deferWeightGradients: true)).Message);
            misuse.Add(Assert.Throws<InvalidOperationException>(() => model.Backward(scale)).Message);
            misuse.Add(Assert.Throws<InvalidOperationException>(() => model.Forward(idTensor, targetTensor, Shape)).Message);
        }
        if (mode != Mode.Fused)
        {
            model.BackwardWeights();
        }
        if (mode == Mode.Misuse)
        {
            misuse.Add(Assert.Throws<InvalidOperationException>(model.BackwardWeights).Message);
        }
        model.FinalizeGradients();
        // The model has no input gradient: the loss stands in for it (the same before and after the weight gradients).
        return new Outcome("model", loss, loss, early, model.SaveGradients(), misuse);
    }

    private static TheoryData<int, bool, string> Grid(string[] variants, Func<bool, string, bool> valid)
    {
        var data = new TheoryData<int, bool, string>();
        foreach (int tp in new[] { 1, 2 })
        {
            foreach (bool sp in new[] { false, true })
            {
                foreach (var v in variants.Where(v => valid(sp, v)))
                {
                    data.Add(tp, sp, v);
                }
            }
        }
        return data;
    }

    /// <summary>A layer under test with its forward, both backwards, and the element counts of this rank's input and output gradient.</summary>
    private sealed record Step(IParallelLayer Layer, Func<Tensor, TokenShape, Tensor> Forward, Func<Tensor, Tensor> FusedBackward,
        Func<Tensor, bool, Tensor> Backward, Action BackwardWeights, Func<TokenShape, long> InputCount, Func<TokenShape, long> OutputGradCount)
    {
        public static Step Of(ColumnParallelLinear l) => new(l, l.Forward, l.Backward, l.Backward, l.BackwardWeights,
            s => Rows(l.Context, l.SequenceParallel, s) * l.InputSize,
            s => (long)s.Tokens * (l.GatherOutput ? l.OutputSize : l.OutputSizePerPartition));

        public static Step Of(RowParallelLinear l) => new(l, l.Forward, l.Backward, l.Backward, l.BackwardWeights,
            s => (long)s.Tokens * (l.InputIsParallel ? l.InputSizePerPartition : l.InputSize),
            s => Rows(l.Context, l.SequenceParallel, s) * l.OutputSize);

        public static Step Of(ParallelMlp l) => Hidden(l, l.Forward, l.Backward, l.Backward, l.BackwardWeights, l.HiddenSize);

        public static Step Of(ParallelAttention l) => Hidden(l, l.Forward, l.Backward, l.Backward, l.BackwardWeights, l.HiddenSize);

        public static Step Of(TransformerLayer l) => Hidden(l, l.Forward, l.Backward, l.Backward, l.BackwardWeights, l.Config.HiddenSize);

        private static Step Hidden(IParallelLayer l, Func<Tensor, TokenShape, Tensor> forward, Func<Tensor, Tensor> fused,
            Func<Tensor, bool, Tensor> backward, Action weights, int hidden) =>
            new(l, forward, fused, backward, weights,
                s => Rows(l.Context, l.Context.SequenceParallel, s) * hidden,
                s => Rows(l.Context, l.Context.SequenceParallel, s) * hidden);

        private static long Rows(ParallelContext c, bool sp, TokenShape s) => sp ? s.Tokens / c.TensorParallelSize : s.Tokens;
    }
}
