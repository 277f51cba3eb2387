using ModelParallel.Planner;

namespace ModelParallel.Tests.Planner;

public sealed class SearchTests
{
    private static readonly SearchResult Llama = Search.Run(Inputs.Llama70BOn16Nodes(), SearchConstraints.None);

    [Fact]
    public void EveryPlanIsValidFitsAndUsesEveryGpu()
    {
        var (model, cluster, training) = Llama.Inputs;
        Assert.NotEmpty(Llama.Plans);
        foreach (var plan in Llama.Plans)
        {
            var l = plan.Layout;
            Assert.Null(l.Problem(model, cluster, training));
            Assert.Equal(0, cluster.GpusPerNode % l.Tp);
            Assert.Equal(0, model.Heads % l.Tp);
            Assert.Equal(0, model.KvHeads % l.Tp);
            Assert.Equal(0, model.Layers % l.Pp);
            Assert.Equal(cluster.TotalGpus, l.Tp * l.Pp * l.Dp);
            Assert.True(plan.Fits);
            Assert.True(plan.PeakBytes <= plan.UsableBytes);
        }
    }

    [Fact]
    public void PlansAreRankedByStepTime()
    {
        var times = Llama.Plans.Select(p => p.Step.Seconds).ToList();
        Assert.Equal(times.Order(), times);
        var mfu = Llama.Plans.Select(p => p.Mfu).ToList();
        Assert.Equal(mfu.OrderDescending(), mfu, new RelativeComparer(1e-12));
    }

    [Fact]
    public void StepIsTheSumOfItsPartsAndMfuFollowsFromIt()
    {
        var plan = Inputs.Pick(Llama.Plans.ToArray());
        var (model, cluster, training) = Llama.Inputs;
        var m = plan.Microbatches;
        var perMicrobatch = plan.ComputePerMicrobatch.Value + plan.TensorParallelPerMicrobatch.Value + plan.PipelinePerMicrobatch.Value;
        var expected = m * perMicrobatch + (plan.Layout.Pp - 1.0) / plan.Layout.VirtualStages * perMicrobatch + plan.DataParallel.Exposed.Value;
        Assert.Equal(expected, plan.Step.Seconds, new RelativeComparer(1e-12));
        var flops = training.GlobalBatch * (double)model.SequenceLength * ComputeModel.ModelFlopsPerToken(model);
        Assert.Equal(flops / (plan.Step.Seconds * cluster.TotalGpus * cluster.PeakFlops), plan.Mfu, new RelativeComparer(1e-12));
        Assert.True(plan.Mfu < training.ComputeEfficiency);
    }

    [Fact]
    public void ComputeIsSixTimesParametersTimesTokensOverTheGpus()
    {
        // With TP only there is no bubble and no stage imbalance: compute of the step = model FLOPs / (N peak efficiency).
        var inputs = Inputs.Llama70BOn16Nodes();
        var plan = PlanEstimator.Evaluate(inputs, new ParallelLayout(8, 1, 16, Inputs.Pick(1, 2, 4)));
        var (model, cluster, training) = inputs;
        var tokens = training.GlobalBatch * (double)model.SequenceLength;
        var flops = tokens * (6 * (model.Layers * Parameters.LayerMatmul(model) + (double)model.Vocab * model.Hidden)
            + 12.0 * model.Layers * model.SequenceLength * model.Hidden);
        Assert.Equal(flops / (cluster.TotalGpus * cluster.PeakFlops * training.ComputeEfficiency), plan.Step.Compute.Value,
            new RelativeComparer(1e-12));
        var full = PlanEstimator.Evaluate(inputs with { Training = training with { Recompute = Recompute.Full } }, plan.Layout);
        Assert.True(full.Step.Compute.Value > plan.Step.Compute.Value * 1.3);
    }

    [Fact]
    public void ConstraintsAreKept()
    {
        var tp = Inputs.Pick(2, 4, 8);
        var result = Search.Run(Llama.Inputs, new SearchConstraints(Tp: tp, VirtualStages: 1));
        Assert.NotEmpty(result.Plans);
        Assert.All(result.Plans, p => Assert.Equal((tp, 1), (p.Layout.Tp, p.Layout.VirtualStages)));
    }

    [Fact]
    public void AnExplicitUnevenSplitIsPlanned()
    {
        var model = ModelPresets.Get("llama3-70b");
        int[] split = [9, 10, 11, 10, 10, 10, 10, 10];
        var inputs = new PlannerInputs(model, Inputs.H100(16), new TrainingSpec { GlobalBatch = 512, ZeroStage = 1, SequenceParallel = true });
        var result = Search.Run(inputs, new SearchConstraints(LayerSplit: split));
        var plan = Assert.IsType<Plan>(result.Best);
        Assert.Equal(8, plan.Layout.Pp);
        Assert.Equal(8, plan.Stages.Count);
        Assert.Equal(split, plan.Stages.Select(s => s.Layers));
    }

    [Fact]
    public void TheComparisonExplainsTheRunnerUpsExtraTime()
    {
        var (best, other) = (Llama.Plans[0], Llama.Plans[Random.Shared.Next(1, Math.Min(10, Llama.Plans.Count))]);
        var differences = PlanComparison.Differences(best, other);
        Assert.Equal(other.Step.Seconds - best.Step.Seconds, differences.Sum(d => d.Seconds), new RelativeComparer(1e-9));
        Assert.Contains("per step", PlanComparison.Explain(best, other));
    }
}
