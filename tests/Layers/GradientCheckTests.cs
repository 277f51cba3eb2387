using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Layers;

/// <summary>
/// The single-rank float64 reference's backward checked on its own: the directional derivative its gradients
/// give equals a central finite difference of its forward, for a random direction in every parameter (and input).
/// </summary>
public class GradientCheckTests
{
    private const double Step = 1e-6;
    private const double Tol = 1e-6;

    [Theory]
    [InlineData(nameof(TransformerLayerTests.Llama))]
    [InlineData(nameof(TransformerLayerTests.Gpt2))]
    public void TransformerLayerGradientsMatchFiniteDifferences(string configName)
    {
        var config = TransformerLayerTests.Config(configName);
        var shape = TransformerLayerTests.Shape;
        var rng = TestRandom.Create();
        var weights = RandomWeights.For(rng, c => new TransformerLayer(c, "layer", config));
        var direction = Direction(rng, weights);
        int count = shape.Tokens * config.HiddenSize;
        var input = Numerics.RandomArray(rng, count);
        var inputDirection = Numerics.RandomArray(rng, count);
        var projection = Numerics.RandomArray(rng, count);
        var (analytic, numeric) = TestWorld.Cpu(DType.Float64).Collect(1, ctx =>
        {
            using var layer = new TransformerLayer(new ParallelContext(ctx.Backend, ctx.World), "layer", config);
            double Loss(double sign)
            {
                layer.Load(Shifted(weights, direction, sign * Step));
                using var x = TestTensors.Upload(ctx.Backend, input.Zip(inputDirection, (v, d) => v + sign * Step * d).ToArray());
                return Dot(TestTensors.Download(layer.Forward(x, shape)), projection);
            }
            double numeric = (Loss(1) - Loss(-1)) / (2 * Step);
            layer.Load(weights);
            using var x = TestTensors.Upload(ctx.Backend, input);
            layer.Forward(x, shape);
            using var dy = TestTensors.Upload(ctx.Backend, projection);
            var dx = TestTensors.Download(layer.Backward(dy));
            return (Dot(dx, inputDirection) + GradDot(layer.SaveGradients(), direction), numeric);
        })[0];
        AssertClose(analytic, numeric, configName);
    }

    [Fact]
    public void GptModelGradientsMatchFiniteDifferences()
    {
        var config = GptModelTests.Config(96);
        var shape = GptModelTests.Shape;
        var rng = TestRandom.Create();
        var weights = RandomWeights.For(rng, c => new GptModel(c, config));
        var direction = Direction(rng, weights);
        var ids = GptRun.RandomTokens(rng, shape.Tokens, config.VocabSize);
        var targets = GptRun.RandomTokens(rng, shape.Tokens, config.VocabSize);
        var (analytic, numeric) = TestWorld.Cpu(DType.Float64).Collect(1, ctx =>
        {
            using var model = new GptModel(new ParallelContext(ctx.Backend, ctx.World), config);
            using var idTensor = TestTensors.UploadInts(ctx.Backend, ids);
            using var targetTensor = TestTensors.UploadInts(ctx.Backend, targets);
            double Loss(double sign)
            {
                model.Load(Shifted(weights, direction, sign * Step));
                return TestTensors.Download(model.Forward(idTensor, targetTensor, shape)).Average();
            }
            double numeric = (Loss(1) - Loss(-1)) / (2 * Step);
            model.Load(weights);
            model.Forward(idTensor, targetTensor, shape);
            model.Backward(1.0 / shape.Tokens);
            return (GradDot(model.SaveGradients(), direction), numeric);
        })[0];
        AssertClose(analytic, numeric, "GPT");
    }

    private static Dictionary<string, double[]> Direction(Random rng, Dictionary<string, double[]> weights) =>
        weights.ToDictionary(w => w.Key, w => Numerics.RandomArray(rng, w.Value.Length));

    private static Dictionary<string, double[]> Shifted(Dictionary<string, double[]> weights, Dictionary<string, double[]> direction, double step) =>
        weights.ToDictionary(w => w.Key, w => w.Value.Zip(direction[w.Key], (v, d) => v + step * d).ToArray());

    private static double Dot(double[] a, double[] b) => a.Zip(b, (x, y) => x * y).Sum();

    private static double GradDot(Dictionary<string, double[]> grads, Dictionary<string, double[]> direction) =>
        grads.Sum(g => Dot(g.Value, direction[g.Key]));

    private static void AssertClose(double analytic, double numeric, string what)
    {
        double err = Math.Abs(analytic - numeric) / Math.Abs(numeric);
        Assert.True(err <= Tol, $"{what}: directional derivative {analytic:R} from backward, {numeric:R} from finite differences ({TestRandom.Describe()})");
    }
}
