using ModelParallel.Layers;
using ModelParallel.Layers.HuggingFace;
using ModelParallel.Runtime;
using ModelParallel.Runtime.SafeTensors;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Layers;

/// <summary>
/// The model against Hugging Face transformers' LlamaForCausalLM in float64: fixtures made by
/// scripts/hf_llama_fixtures.py (config.json, model.safetensors as transformers saved them, and reference.safetensors
/// with the input, targets, logits, mean loss and every parameter's gradient), loaded through the Hugging Face mapping
/// at TP 1, 2 and 4, with and without sequence parallelism, on the CPU backend in float64.
/// </summary>
public class HfLlamaFixtureTests
{
    /// <summary>Float64 agreement: the reference and the model round differently, nothing more.</summary>
    private const double Tol = 1e-13;

    public static TheoryData<string, int, bool> Cases()
    {
        var data = new TheoryData<string, int, bool>();
        foreach (string fixture in new[] { "gqa", "tied-llama3", "mha" })
        {
            foreach (int tp in new[] { 1, 2, 4 })
            {
                data.Add(fixture, tp, false);
                data.Add(fixture, tp, true);
            }
        }
        return data;
    }

    internal static string Folder(string fixture) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "HfLlama", fixture);

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTransformers(string fixture, int tp, bool sp)
    {
        string folder = Folder(fixture);
        var config = LlamaConfigJson.Read(folder);
        using var weights = SafeTensorsCheckpoint.Open(folder);
        using var reference = SafeTensorsFile.Open(Path.Combine(folder, "reference.safetensors"));
        var batch = LlamaBatch.Read(reference);
        var outputs = TestWorld.Cpu(DType.Float64).Collect(tp, ctx =>
        {
            var context = new ParallelContext(ctx.Backend, ctx.World, sp);
            using var model = new GptModel(context, config);
            LlamaCheckpoint.Load(model, weights);
            return LlamaRun.ForwardBackward(model, batch);
        });
        string what = $"{fixture} TP={tp}{(sp ? " SP" : "")}";
        var gradNames = reference.Names.Where(n => n.StartsWith("grad.", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(gradNames);
        for (int r = 0; r < tp; r++)
        {
            var o = outputs[r];
            Numerics.AssertClose(o.Logits, ReadAll(reference, "logits"), Tol, $"{what} rank {r} logits");
            Numerics.AssertClose([o.Loss], ReadAll(reference, "loss"), Tol, $"{what} rank {r} loss");
            Assert.Equal(gradNames.Count, o.Gradients.Count);
            foreach (string g in gradNames)
            {
                string name = g["grad.".Length..];
                Assert.True(o.Gradients.ContainsKey(name), $"{what}: no gradient for {name}");
                Numerics.AssertClose(o.Gradients[name], ReadAll(reference, g), Tol, $"{what} rank {r} gradient of {name}");
            }
        }
    }

    public static TheoryData<string, string> WrongConfigs => new()
    {
        { "gqa", "rotary base 10000" },
        { "gqa", "norm epsilon 1e-4" },
        { "tied-llama3", "no llama3 scaling" },
        { "tied-llama3", "rotary base 10000" },
    };

    /// <summary>The fixtures tell a model with one wrong number from the right one: its logits miss by far more than the tolerance.</summary>
    [Theory]
    [MemberData(nameof(WrongConfigs))]
    public void AWrongConfigMissesTheFixture(string fixture, string wrong)
    {
        string folder = Folder(fixture);
        var config = LlamaConfigJson.Read(folder);
        var t = config.Transformer;
        config = config with
        {
            Transformer = wrong switch
            {
                "rotary base 10000" => t with { RotaryBase = 10000 },
                "norm epsilon 1e-4" => t with { NormEpsilon = 1e-4 },
                "no llama3 scaling" => t with { RopeScaling = null },
                _ => throw new ArgumentOutOfRangeException(nameof(wrong), wrong, "unknown change"),
            },
        };
        using var weights = SafeTensorsCheckpoint.Open(folder);
        using var reference = SafeTensorsFile.Open(Path.Combine(folder, "reference.safetensors"));
        var outputs = TestWorld.Cpu(DType.Float64).Collect(1, ctx =>
        {
            using var model = new GptModel(new ParallelContext(ctx.Backend, ctx.World), config);
            LlamaCheckpoint.Load(model, weights);
            return LlamaRun.ForwardBackward(model, LlamaBatch.Read(reference), backward: false);
        });
        double err = Numerics.RelativeError(outputs[0].Logits, ReadAll(reference, "logits"));
        Assert.True(err > 1e-6, $"{fixture} with {wrong}: logits error {err:E3} should be far above the tolerance {Tol:E0}");
    }

    /// <summary>The configs read from the fixtures are the ones the script wrote (head_dim, GQA, tying, rope).</summary>
    [Fact]
    public void ConfigsReadAsWritten()
    {
        var gqa = LlamaConfigJson.Read(Folder("gqa"));
        Assert.Equal((97, 2, false), (gqa.VocabSize, gqa.Layers, gqa.ShareEmbeddingsAndOutputWeights));
        Assert.Equal((64, 8, 4, 96, 8), (gqa.Transformer.HiddenSize, gqa.Transformer.AttentionHeads, gqa.Transformer.QueryGroups,
            gqa.Transformer.FfnHiddenSize, gqa.Transformer.HeadDim));
        Assert.Equal(50000.0, gqa.Transformer.RotaryBase);
        Assert.Null(gqa.Transformer.RopeScaling);
        var tied = LlamaConfigJson.Read(Folder("tied-llama3"));
        Assert.True(tied.ShareEmbeddingsAndOutputWeights);
        Assert.Equal((48, 4, 1, 16), (tied.Transformer.HiddenSize, tied.Transformer.AttentionHeads, tied.Transformer.QueryGroups, tied.Transformer.HeadDim));
        Assert.Equal(new Llama3RopeScaling(8, 1, 4, 64), tied.Transformer.RopeScaling);
        Assert.Equal(500000.0, tied.Transformer.RotaryBase);
        Assert.Equal(1e-6, tied.Transformer.NormEpsilon);
    }

    internal static double[] ReadAll(ITensorReader reader, string name)
    {
        var values = new double[reader.Info(name).Count];
        reader.Read(name, 0, values);
        return values;
    }
}
