using ModelParallel.Layers;
using ModelParallel.Layers.HuggingFace;
using ModelParallel.Runtime;
using ModelParallel.Runtime.SafeTensors;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Layers;

/// <summary>Export to Hugging Face names and loading back, per shard, on other TP degrees; checkpoints that do not fit the config.</summary>
public sealed class LlamaCheckpointTests : IDisposable
{
    private static readonly GptConfig Config = new(97, 2, new TransformerConfig(32, 4, 2, 48, KvChannels: 12, RotaryBase: 40000,
        RopeScaling: new Llama3RopeScaling(4, 1, 4, 32)));

    private static readonly GptConfig Tied = Config with { ShareEmbeddingsAndOutputWeights = true };

    private readonly string _dir = Directory.CreateTempSubdirectory("mp-llama").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Theory]
    [InlineData(false, 2, false)]
    [InlineData(false, 4, true)]
    [InlineData(true, 4, false)]
    public void ExportedWeightsLoadOnAnotherTpDegree(bool tied, int tp, bool sp)
    {
        var config = tied ? Tied : Config;
        var rng = TestRandom.Create();
        var original = TestWorld.Cpu(DType.Float64).Collect(1, ctx =>
        {
            var context = new ParallelContext(ctx.Backend, ctx.World, seed: rng.Next());
            using var model = new GptModel(context, config);
            LlamaCheckpoint.Export(model, _dir, SafeTensorsDType.F64, maxShardBytes: 20_000);
            return LlamaMapping.ToHuggingFace(LlamaMapping.For(config, model.PaddedVocabSize), model.Save());
        })[0];
        Assert.True(File.Exists(Path.Combine(_dir, "model.safetensors.index.json")), "a 20 kB shard limit must split the export");
        Assert.Equal(config, LlamaConfigJson.Read(_dir));
        Assert.Equal(tied, !original.ContainsKey(LlamaMapping.LmHead));
        using var reader = SafeTensorsCheckpoint.Open(_dir);
        Assert.Equal(original.Keys.Order(), reader.Names.Order());
        var loaded = TestWorld.Cpu(DType.Float64).Collect(tp, ctx =>
        {
            var context = new ParallelContext(ctx.Backend, ctx.World, sp, seed: 7);
            using var model = new GptModel(context, config);
            var report = LlamaCheckpoint.Load(model, reader);
            Assert.Equal(model.Parameters.Sum(p => p.LocalCount), report.Elements);
            return LlamaMapping.ToHuggingFace(LlamaMapping.For(config, model.PaddedVocabSize), model.Save());
        });
        foreach (var rank in loaded)
        {
            foreach (var (name, values) in original)
            {
                Assert.Equal(values, rank[name]);
            }
        }
    }

    /// <summary>
    /// The fused QKV rows, by hand: 4 query heads in 2 groups, head_dim 12; the rows of group 1 are query heads 2 and 3,
    /// then key head 1, then value head 1.
    /// </summary>
    [Fact]
    public void QkvRowsFollowTheQueryGroups()
    {
        var qkv = LlamaMapping.For(Config, 97).Single(m => m.Parameter == "decoder.layers.1.self_attention.linear_qkv.weight");
        Assert.Equal((4 + 2 * 2) * 12, qkv.Rows);
        var expected = new (int Row, string Tensor, int HfRow)[]
        {
            (0, "q_proj", 0), (23, "q_proj", 23), (24, "k_proj", 0), (36, "v_proj", 0), (47, "v_proj", 11),
            (48, "q_proj", 24), (71, "q_proj", 47), (72, "k_proj", 12), (84, "v_proj", 12), (95, "v_proj", 23),
        };
        foreach (var (row, tensor, hfRow) in expected)
        {
            var s = qkv.Find(row)!.Value;
            Assert.Equal($"model.layers.1.self_attn.{tensor}.weight", s.Source.Name);
            Assert.Equal(hfRow, s.HfFirstRow + row - s.FirstRow);
        }
        var fc1 = LlamaMapping.For(Config, 97).Single(m => m.Parameter == "decoder.layers.0.mlp.linear_fc1.weight");
        Assert.Equal("model.layers.0.mlp.gate_proj.weight", fc1.Find(47)!.Value.Source.Name);
        Assert.Equal("model.layers.0.mlp.up_proj.weight", fc1.Find(48)!.Value.Source.Name);
        Assert.Null(LlamaMapping.For(Config, 100)[0].Find(97));
    }

    public static TheoryData<string, string> Broken => new()
    {
        { "missing", "checkpoint has no tensor 'model.layers.1.mlp.down_proj.weight' [32, 48]" },
        { "shape", "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [24, 33]; the config gives [24, 32]" },
        { "bias", "tensor 'model.layers.0.self_attn.q_proj.bias' is not part of a LlamaForCausalLM" },
        { "layer", "tensor 'model.layers.2.input_layernorm.weight' is not part of a LlamaForCausalLM" },
        { "integer", "tensor 'model.norm.weight' has integer dtype I64" },
    };

    [Theory]
    [MemberData(nameof(Broken))]
    public void CheckpointsThatDoNotFitTheConfigAreRefusedNamingTheTensor(string how, string expected)
    {
        var rng = TestRandom.Create();
        var weights = LlamaMapping.Tensors(LlamaMapping.For(Config, 97))
            .Select(t => new SafeTensorEntry(t.Name, SafeTensorsDType.F32, t.Shape, Numerics.RandomArray(rng, checked((int)t.Count))))
            .ToList();
        switch (how)
        {
            case "missing":
                weights.RemoveAll(e => e.Name == "model.layers.1.mlp.down_proj.weight");
                break;
            case "shape":
                int k = weights.FindIndex(e => e.Name == "model.layers.0.self_attn.k_proj.weight");
                weights[k] = new SafeTensorEntry(weights[k].Name, SafeTensorsDType.F32, [24, 33], Numerics.RandomArray(rng, 24 * 33));
                break;
            case "bias":
                weights.Add(new SafeTensorEntry("model.layers.0.self_attn.q_proj.bias", SafeTensorsDType.F32, [48], Numerics.RandomArray(rng, 48)));
                break;
            case "layer":
                weights.Add(new SafeTensorEntry("model.layers.2.input_layernorm.weight", SafeTensorsDType.F32, [32], Numerics.RandomArray(rng, 32)));
                break;
            case "integer":
                int n = weights.FindIndex(e => e.Name == "model.norm.weight");
                weights[n] = new SafeTensorEntry(weights[n].Name, SafeTensorsDType.I64, [32], Enumerable.Range(1, 32).Select(i => (double)i).ToArray());
                break;
        }
        string path = Path.Combine(_dir, "model.safetensors");
        SafeTensorsWriter.Write(path, weights);
        using var reader = SafeTensorsCheckpoint.Open(_dir);
        var e = Assert.Throws<InvalidDataException>(() => LlamaCheckpoint.Validate(Config, reader));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
