using ModelParallel.Planner;

namespace ModelParallel.Tests.Planner;

public sealed class ParameterTests
{
    /// <summary>Parameter counts of the released Llama checkpoints (the sum of their tensors' sizes).</summary>
    [Theory]
    [InlineData("llama2-7b", 6_738_415_616)]
    [InlineData("llama2-13b", 13_015_864_320)]
    [InlineData("llama2-70b", 68_976_648_192)]
    [InlineData("llama3-8b", 8_030_261_248)]
    [InlineData("llama3-70b", 70_553_706_496)]
    [InlineData("llama3-405b", 405_853_388_800)]
    public void LlamaPresetsMatchTheReleasedCheckpoints(string name, long released) =>
        Assert.Equal(released, Parameters.Total(ModelPresets.Get(name)));

    [Fact]
    public void Gpt3PresetIs175Billion() =>
        Assert.Equal(175e9, Parameters.Total(ModelPresets.Get("GPT-3 175B")), new RelativeComparer(5e-3));

    [Fact]
    public void TensorRanksTogetherHoldTheModelPlusTheirReplicas()
    {
        var model = Inputs.Pick(ModelPresets.All.ToArray());
        var tp = Inputs.Pick(1, 2, 4, 8);
        var replicated = model.Layers * Parameters.LayerReplicated(model) + Parameters.Positions(model) + Parameters.NormParameters(model);
        var sum = tp * Parameters.Stage(model, tp, 1, 0, model.Layers);
        Assert.Equal(Parameters.Total(model) + (tp - 1) * replicated, sum, new RelativeComparer(1e-12));
    }

    [Fact]
    public void PipelineStagesTogetherHoldTheModelAndATiedCopy()
    {
        foreach (var model in ModelPresets.All)
        {
            var pp = Inputs.Pick(2, 3, 4, 8);
            var split = Enumerable.Range(0, pp).Select(s => model.Layers / pp + (s < model.Layers % pp ? 1 : 0)).ToArray();
            var sum = split.Select((layers, s) => Parameters.Stage(model, 1, pp, s, layers)).Sum();
            var copy = model.TiedEmbeddings ? Parameters.Embedding(model) : 0;
            Assert.Equal(Parameters.Total(model) + copy, sum, new RelativeComparer(1e-12));
        }
    }

    [Fact]
    public void GroupedQueryAttentionShrinksKAndV()
    {
        var model = ModelPresets.Get("llama2-70b");
        var h = (double)model.Hidden;
        var attention = h * (h + 2 * model.KvHeads * model.HeadDim) + h * h;
        Assert.Equal(attention + 3 * h * model.Ffn, Parameters.LayerMatmul(model));
        Assert.True(Parameters.LayerMatmul(model) < Parameters.LayerMatmul(model with { KvHeads = model.Heads }));
    }
}
