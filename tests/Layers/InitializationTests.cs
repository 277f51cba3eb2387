using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Layers;

/// <summary>Seeded master weights, load and save of full weights, and gradient accumulation.</summary>
public class InitializationTests
{
    private static readonly TokenShape Shape = TransformerLayerTests.Shape;

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void SeededInitComputesTheSameFunctionAtEveryDegree(int tp)
    {
        var config = TransformerLayerTests.Gpt2;
        var input = Numerics.RandomArray(TestRandom.Create(), Shape.Tokens * config.HiddenSize);
        int seed = Random.Shared.Next();
        (Dictionary<string, double[]> Weights, double[] Output)[] Run(int degree) =>
            TestWorld.Cpu(DType.Float64).Collect(degree, ctx =>
            {
                using var layer = new TransformerLayer(new ParallelContext(ctx.Backend, ctx.World, seed: seed), "layer", config);
                using var x = TestTensors.Upload(ctx.Backend, input);
                return (layer.Save(), TestTensors.Download(layer.Forward(x, Shape)));
            });
        var reference = Run(1)[0];
        foreach (var (weights, output) in Run(tp))
        {
            foreach (var (name, expected) in reference.Weights)
            {
                Assert.Equal(expected, weights[name]);
            }
            Numerics.AssertClose(output, reference.Output, 1e-12, $"TP={tp} output of seeded weights (seed {seed})");
        }
    }

    [Fact]
    public void SeededInitFollowsMegatronsDefaults()
    {
        var config = TransformerLayerTests.Gpt2;
        var weights = TestWorld.Cpu(DType.Float64).Collect(1, ctx =>
        {
            using var layer = new TransformerLayer(new ParallelContext(ctx.Backend, ctx.World, seed: 7), "layer", config);
            return layer.Save();
        })[0];
        Assert.All(weights["layer.input_layernorm.weight"], w => Assert.Equal(1.0, w));
        Assert.All(weights["layer.mlp.linear_fc1.bias"], w => Assert.Equal(0.0, w));
        var fc1 = weights["layer.mlp.linear_fc1.weight"];
        double mean = fc1.Average(), std = Math.Sqrt(fc1.Select(w => (w - mean) * (w - mean)).Average());
        Assert.InRange(mean, -0.002, 0.002);
        Assert.InRange(std, 0.019, 0.021);
        Assert.NotEqual(fc1, weights["layer.mlp.linear_fc2.weight"][..fc1.Length]);
        Assert.NotEqual(fc1, MasterInit.Generate(8, "layer.mlp.linear_fc1.weight", ParameterInit.Normal, fc1.Length));
        Assert.Equal(fc1, MasterInit.Generate(7, "layer.mlp.linear_fc1.weight", ParameterInit.Normal, fc1.Length));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void SaveReturnsWhatWasLoaded(int tp)
    {
        var weights = RandomWeights.For(TestRandom.Create(), c => new GptModel(c, GptModelTests.Config(96)));
        var saved = TestWorld.Cpu(DType.Float64).Collect(tp, ctx =>
        {
            using var model = new GptModel(new ParallelContext(ctx.Backend, ctx.World), GptModelTests.Config(96));
            model.Load(weights);
            return model.Save();
        });
        foreach (var rankWeights in saved)
        {
            Assert.Equal(weights.Keys.Order(), rankWeights.Keys.Order());
            foreach (var (name, expected) in weights)
            {
                Assert.Equal(expected, rankWeights[name]);
            }
        }
    }

    [Fact]
    public void GradientsAccumulateAcrossBackwardsUntilZeroed()
    {
        var build = TransformerLayerTests.Build(TransformerLayerTests.Gpt2);
        var rng = TestRandom.Create();
        var weights = RandomWeights.For(rng, c => build(c).Layer);
        int hidden = TransformerLayerTests.Hidden;
        var input = Numerics.RandomArray(rng, Shape.Tokens * hidden);
        var outputGrad = Numerics.RandomArray(rng, Shape.Tokens * hidden);
        var results = TestWorld.Cpu(DType.Float64).Collect(2, ctx =>
        {
            var step = build(new ParallelContext(ctx.Backend, ctx.World, sequenceParallel: true));
            using var layer = step.Layer;
            layer.Load(weights);
            using var x = TestTensors.Upload(ctx.Backend, HostArrays.Rows(input, hidden, ctx.Rank, 2));
            using var dy = TestTensors.Upload(ctx.Backend, HostArrays.Rows(outputGrad, hidden, ctx.Rank, 2));
            Dictionary<string, double[]> Accumulate(int backwards)
            {
                for (int i = 0; i < backwards; i++)
                {
                    step.Forward(x, Shape);
                    step.Backward(dy);
                }
                layer.FinalizeGradients();
                var grads = layer.SaveGradients();
                layer.ZeroGrad();
                return grads;
            }
            var once = Accumulate(1);
            var twice = Accumulate(2);
            return (once, twice, zeroed: layer.SaveGradients());
        });
        foreach (var (once, twice, zeroed) in results)
        {
            foreach (var (name, grad) in once)
            {
                Numerics.AssertClose(twice[name], grad.Select(g => 2 * g).ToArray(), 1e-12, $"twice the gradient of {name}");
                Assert.All(zeroed[name], g => Assert.Equal(0.0, g));
            }
        }
    }
}
