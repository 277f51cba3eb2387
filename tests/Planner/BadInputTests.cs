using ModelParallel.Planner;

namespace ModelParallel.Tests.Planner;

/// <summary>Every kind of bad input gets an exception whose message names the numbers.</summary>
public sealed class BadInputTests
{
    private static readonly PlannerInputs Llama = Inputs.Llama70BOn16Nodes();

    private static readonly ModelSpec Small = new()
    {
        Name = "small", Layers = 12, Hidden = 768, Heads = 12, KvHeads = 12, Ffn = 3072,
        Activation = FfnActivation.Gelu, Vocab = 50257, SequenceLength = 1024,
    };

    [Theory]
    [InlineData(3, "TP 3 does not divide the 8 GPUs per node")]
    [InlineData(16, "TP 16 exceeds the 8 GPUs per node")]
    public void TensorDegreeMustFitInANode(int tp, string message) => Fails(Llama, new SearchConstraints(Tp: tp), message);

    [Fact]
    public void TensorDegreeMustDivideHeadsKvHeadsAndFfn()
    {
        Fails(Llama with { Model = Small }, new SearchConstraints(Tp: 8), "TP 8 does not divide the 12 attention heads");
        var wide = Inputs.H100(1) with { GpusPerNode = 16 };
        Fails(Llama with { Cluster = wide }, new SearchConstraints(Tp: 16), "TP 16 does not divide the 8 kv heads");
        var oddFfn = Small with { Heads = 16, KvHeads = 16, Hidden = 1024, Ffn = 1000 };
        Fails(Llama with { Model = oddFfn }, new SearchConstraints(Tp: 16), "TP 16 exceeds");
        Fails(Llama with { Model = oddFfn, Cluster = wide }, new SearchConstraints(Tp: 16), "TP 16 does not divide the ffn width 1000");
    }

    [Fact]
    public void PipelineDegreeMustDivideTheLayersOrComeWithASplit()
    {
        Fails(Llama, new SearchConstraints(Pp: 3), "PP 3 does not divide the 80 layers");
        Fails(Llama, new SearchConstraints(LayerSplit: [40, 41]), "sums to 81, but the model has 80 layers");
        Fails(Llama, new SearchConstraints(LayerSplit: [80, 0]), "has a stage without layers");
        Fails(Llama, new SearchConstraints(Pp: 4, LayerSplit: [40, 40]), "PP 4 disagrees with the layer split 40,40");
    }

    [Fact]
    public void DegreesMustMultiplyToTheGpus()
    {
        Fails(Llama, new SearchConstraints(Tp: 8, Pp: 5), "TP 8 x PP 5 = 40 does not divide the 128 GPUs");
        Fails(Llama, new SearchConstraints(Tp: 8, Pp: 4, Dp: 2), "TP 8 x PP 4 x DP 2 = 64 GPUs, but the cluster has 128");
        EvaluationFails(Llama, new ParallelLayout(8, 4, 2, 1), "TP 8 x PP 4 x DP 2 = 64 GPUs, but the cluster has 128");
    }

    [Fact]
    public void ZeroGpusAreRejected()
    {
        Fails(Llama with { Cluster = Inputs.H100(0) }, SearchConstraints.None, "nodes must be positive (got 0)");
        Fails(Llama with { Cluster = Inputs.H100(2) with { GpusPerNode = 0 } }, SearchConstraints.None, "GPUs per node must be positive (got 0)");
        Fails(Llama, new SearchConstraints(Tp: 0), "TP must be positive (got 0)");
    }

    [Fact]
    public void BatchMustSplitIntoMicrobatches()
    {
        Fails(Llama with { Training = Llama.Training with { GlobalBatch = 1000 } }, new SearchConstraints(Tp: 8, Pp: 1),
            "global batch 1000 is not a multiple of DP 16 x micro batch 1 = 16");
        var small = Llama with { Training = Llama.Training with { GlobalBatch = 48 } };
        EvaluationFails(small, new ParallelLayout(4, 4, 8, 1, VirtualStages: 2),
            "the interleaved schedule needs the 6 microbatches to be a multiple of PP 4");
        EvaluationFails(Llama, new ParallelLayout(4, 4, 8, 1, VirtualStages: 3), "virtual stages 3 do not divide the 20 layers of each stage");
        EvaluationFails(Llama, new ParallelLayout(8, 1, 16, 1, VirtualStages: 2), "virtual stages 2 need pipeline parallelism (PP is 1)");
    }

    [Fact]
    public void BadModelAndTrainingValuesAreRejected()
    {
        Fails(Llama with { Model = Small with { Heads = 7 } }, SearchConstraints.None, "hidden 768 is not a multiple of the 7 heads");
        Fails(Llama with { Model = Small with { KvHeads = 5 } }, SearchConstraints.None, "heads 12 is not a multiple of the 5 kv heads");
        Fails(Llama with { Model = Small with { Layers = 0 } }, SearchConstraints.None, "model layers must be positive (got 0)");
        Fails(Llama with { Training = Llama.Training with { ZeroStage = 4 } }, SearchConstraints.None, "ZeRO stage must be 0, 1, 2 or 3 (got 4)");
        Fails(Llama with { Training = Llama.Training with { ComputeEfficiency = 1.5 } }, SearchConstraints.None, "compute efficiency must be in (0, 1] (got 1.5)");
    }

    [Fact]
    public void AModelThatFitsNowhereSaysWhichTermIsOverAndByHowMuch()
    {
        var inputs = new PlannerInputs(ModelPresets.Get("llama3-405b"), Inputs.H100(1), new TrainingSpec { GlobalBatch = 64 });
        var result = Search.Run(inputs, SearchConstraints.None);
        Assert.Null(result.Best);
        var closest = Assert.IsType<Plan>(result.Closest);
        var why = result.WhyNothingFits()!;
        var over = closest.PeakBytes - closest.UsableBytes;
        Assert.True(over > 0);
        Assert.Contains($"over by {Units.Bytes(over)}", why);
        Assert.Contains("optimizer states", why);
        Assert.Contains(Units.Bytes(closest.Fullest.Terms.Single(t => t.Name == "optimizer states").Value), why);
        Assert.Contains("With full recomputation the same layout would need", why);
    }

    private static void EvaluationFails(PlannerInputs inputs, ParallelLayout layout, string message) =>
        Assert.Contains(message, Assert.Throws<ArgumentException>(() => PlanEstimator.Evaluate(inputs, layout)).Message);

    private static void Fails(PlannerInputs inputs, SearchConstraints constraints, string message) =>
        Assert.Contains(message, Assert.Throws<ArgumentException>(() => Search.Run(inputs, constraints)).Message);
}
