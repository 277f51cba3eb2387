using ModelParallel.Planner;

namespace ModelParallel.Tests.Planner;

/// <summary>
/// The activation terms against Korthikanti et al. 2022's closed forms, which assume a GPT layer (ffn 4h,
/// GeLU, dropout, materialised softmax, 2-byte elements) and neglect the fp32 norm statistics; the
/// planner keeps those statistics as separate terms, so they are subtracted before comparing.
/// </summary>
public sealed class ActivationMemoryTests
{
    private static readonly ModelSpec Gpt3 = ModelPresets.Get("gpt3-175b");

    private static readonly TrainingSpec Materialized = new() { GlobalBatch = 1, Attention = AttentionKind.Materialized };

    [Fact]
    public void NoParallelismIs34PlusScores()
    {
        var b = Inputs.Pick(1, 2, 4);
        var (s, h, a) = Sizes(Gpt3);
        Assert.Equal(s * b * h * (34 + 5 * a * s / h), WithoutStatistics(Gpt3, Materialized, 1, b), new RelativeComparer(1e-12));
    }

    [Fact]
    public void TensorParallelismSplits24OfThe34()
    {
        var (b, t) = (Inputs.Pick(1, 2), Inputs.Pick(2, 4, 8));
        var (s, h, a) = Sizes(Gpt3);
        Assert.Equal(s * b * h * (10 + 24.0 / t + 5 * a * s / (h * t)), WithoutStatistics(Gpt3, Materialized, t, b), new RelativeComparer(1e-12));
    }

    [Fact]
    public void SequenceParallelismSplitsAllOfIt()
    {
        var (b, t) = (Inputs.Pick(1, 2), Inputs.Pick(2, 4, 8));
        var (s, h, a) = Sizes(Gpt3);
        var training = Materialized with { SequenceParallel = true };
        Assert.Equal(s * b * h * (34.0 / t + 5 * a * s / (h * t)), WithoutStatistics(Gpt3, training, t, b), new RelativeComparer(1e-12));
    }

    [Fact]
    public void SelectiveRecomputationDropsTheScores()
    {
        var (b, t) = (Inputs.Pick(1, 2), Inputs.Pick(1, 2, 4, 8));
        var (s, h, _) = Sizes(Gpt3);
        var training = Materialized with { SequenceParallel = true, Recompute = Recompute.Selective };
        Assert.Equal(s * b * h * 34.0 / t, WithoutStatistics(Gpt3, training, t, b), new RelativeComparer(1e-12));
    }

    [Fact]
    public void FullRecomputationKeepsTheLayerInput()
    {
        var (b, t) = (Inputs.Pick(1, 2), Inputs.Pick(2, 4, 8));
        var (s, h, _) = Sizes(Gpt3);
        var full = Materialized with { Recompute = Recompute.Full };
        Assert.Equal(2 * s * b * h, Total(Gpt3, full, t, b), new RelativeComparer(1e-12));
        Assert.Equal(2 * s * b * h / t, Total(Gpt3, full with { SequenceParallel = true }, t, b), new RelativeComparer(1e-12));
    }

    [Fact]
    public void FlashAttentionKeepsALogSumExpInsteadOfScores()
    {
        var model = ModelPresets.Get("llama2-70b");
        var (b, t) = (Inputs.Pick(1, 2), Inputs.Pick(1, 2, 4, 8));
        var flash = new TrainingSpec { GlobalBatch = 1 };
        var lse = ActivationMemory.Layer(model, flash, t, b).Single(x => x.Name.Contains("log-sum-exp"));
        Assert.Equal(4.0 * model.Heads * model.SequenceLength * b / t, lse.Value);
        // Linear in s with flash attention, superlinear with materialised scores.
        var doubled = model with { SequenceLength = 2 * model.SequenceLength };
        Assert.Equal(2 * Total(model, flash, t, b), Total(doubled, flash, t, b), new RelativeComparer(1e-12));
        Assert.True(Total(doubled, Materialized, t, b) > 2.5 * Total(model, Materialized, t, b));
    }

    [Fact]
    public void KAndVFollowTheKvHeadsAndSwiGluKeepsThreeFfnTensors()
    {
        var model = ModelPresets.Get("llama3-70b");
        var (b, t) = (Inputs.Pick(1, 2), Inputs.Pick(1, 2, 4, 8));
        var terms = ActivationMemory.Layer(model, new TrainingSpec { GlobalBatch = 1 }, t, b);
        double tokens = model.SequenceLength * b;
        Assert.Equal(2 * 2 * tokens * model.KvHeads * model.HeadDim / t, terms.Single(x => x.Name == "K and V").Value);
        var ffn = terms.Where(x => x.Formula.Contains(" f/t")).Sum(x => x.Value);
        Assert.Equal(3 * 2 * tokens * model.Ffn / t, ffn);
    }

    [Fact]
    public void Fp32DoublesTheElementsButNotTheMasksOrStatistics()
    {
        var b = Inputs.Pick(1, 2);
        var t = Inputs.Pick(1, 2, 4, 8);
        var bf16 = ActivationMemory.Layer(Gpt3, Materialized, t, b);
        var fp32 = ActivationMemory.Layer(Gpt3, Materialized with { Precision = Precision.Fp32 }, t, b);
        foreach (var (half, single) in bf16.Zip(fp32))
        {
            var fixedSize = half.Name.Contains("mask") || half.Name.Contains("statistics");
            Assert.Equal(fixedSize ? half.Value : 2 * half.Value, single.Value);
        }
    }

    [Fact]
    public void NormStatisticsAreFp32PerToken()
    {
        var b = Inputs.Pick(1, 2);
        var stats = ActivationMemory.Layer(Gpt3, Materialized, 1, b).Where(x => x.Name.Contains("statistics")).Sum(x => x.Value);
        Assert.Equal(2 * 8.0 * Gpt3.SequenceLength * b, stats);
        var llama = ModelPresets.Get("llama2-7b");
        var rms = ActivationMemory.Layer(llama, Materialized, 1, b).Where(x => x.Name.Contains("statistics")).Sum(x => x.Value);
        Assert.Equal(2 * 4.0 * llama.SequenceLength * b, rms);
    }

    private static (double S, double H, double A) Sizes(ModelSpec m) => (m.SequenceLength, m.Hidden, m.Heads);

    private static double Total(ModelSpec m, TrainingSpec training, int t, int b) =>
        ActivationMemory.Layer(m, training, t, b).Sum(x => x.Value);

    private static double WithoutStatistics(ModelSpec m, TrainingSpec training, int t, int b) =>
        ActivationMemory.Layer(m, training, t, b).Where(x => !x.Name.Contains("statistics")).Sum(x => x.Value);
}
