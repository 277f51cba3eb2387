using ModelParallel.Planner;

namespace ModelParallel.Tests.Planner;

public sealed class PipelineTests
{
    [Fact]
    public void BubbleIsPMinusOneOverM()
    {
        var (p, m, v) = (Random.Shared.Next(2, 33), Random.Shared.Next(1, 513), Random.Shared.Next(2, 9));
        Assert.Equal((p - 1.0) / m, PipelineModel.BubbleFraction(p, 1, m));
        Assert.Equal((p - 1.0) / (v * m), PipelineModel.BubbleFraction(p, v, m), new RelativeComparer(1e-12));
        Assert.Equal(0, PipelineModel.BubbleFraction(1, 1, m));
    }

    [Fact]
    public void OneFOneBHoldsPMinusRMicrobatchesOnStageR()
    {
        var (p, layers) = (Random.Shared.Next(2, 17), Random.Shared.Next(1, 11));
        var m = Random.Shared.Next(p, 257);
        for (var r = 0; r < p; r++)
        {
            Assert.Equal((p - r) * (double)layers, PipelineModel.Held(p, 1, m, r, layers).LayerActivations);
        }
        // Fewer microbatches than stages: the first stage holds all of them.
        Assert.Equal(2.0 * layers, PipelineModel.Held(p, 1, 2, 0, layers).LayerActivations);
    }

    [Fact]
    public void InterleavingHoldsLTimesOnePlusPMinusOneOverPvOnTheFirstStage()
    {
        var (p, v) = (Inputs.Pick(2, 4, 8), Inputs.Pick(2, 3, 5));
        var layersTotal = p * v * Random.Shared.Next(1, 5);
        var m = p * Random.Shared.Next(p, 32);
        var held = PipelineModel.Held(p, v, m, 0, layersTotal / p);
        Assert.Equal(layersTotal * (1 + (p - 1.0) / (p * v)), held.LayerActivations, new RelativeComparer(1e-12));
    }

    [Fact]
    public void FirstStageActivationsOf1F1BEqualTheWholeModelsForOneMicrobatch()
    {
        var inputs = Inputs.Llama70BOn16Nodes();
        var pp = Inputs.Pick(2, 4, 8);
        var layout = new ParallelLayout(4, pp, 128 / (4 * pp), 1);
        var stage = MemoryModel.Stage(inputs.Model, inputs.Training, layout, 0);
        var activations = stage.Terms.Single(t => t.Name == "activations").Value;
        Assert.Equal(inputs.Model.Layers * stage.LayerActivationBytes, activations, new RelativeComparer(1e-12));
    }
}
