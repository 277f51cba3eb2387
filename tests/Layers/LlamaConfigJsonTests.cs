using System.Text.Json.Nodes;
using ModelParallel.Layers;
using ModelParallel.Layers.HuggingFace;
using ModelParallel.Runtime;

namespace ModelParallel.Tests.Layers;

/// <summary>config.json of LlamaForCausalLM into the model's configuration, both rope spellings, and every refusal naming its key.</summary>
public class LlamaConfigJsonTests
{
    private static JsonObject Base() => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = "llama",
        ["hidden_size"] = 2048,
        ["intermediate_size"] = 8192,
        ["num_attention_heads"] = 32,
        ["num_key_value_heads"] = 8,
        ["num_hidden_layers"] = 16,
        ["vocab_size"] = 128256,
        ["rms_norm_eps"] = 1e-5,
        ["rope_theta"] = 500000.0,
        ["rope_scaling"] = new JsonObject
        {
            ["rope_type"] = "llama3",
            ["factor"] = 32.0,
            ["low_freq_factor"] = 1.0,
            ["high_freq_factor"] = 4.0,
            ["original_max_position_embeddings"] = 8192,
        },
        ["tie_word_embeddings"] = true,
        ["head_dim"] = 64,
        ["hidden_act"] = "silu",
        ["attention_bias"] = false,
        ["mlp_bias"] = false,
    };

    [Fact]
    public void ReadsALlama32Config()
    {
        var c = LlamaConfigJson.Parse(Base(), "config.json");
        var t = c.Transformer;
        Assert.Equal((128256, 16, true), (c.VocabSize, c.Layers, c.ShareEmbeddingsAndOutputWeights));
        Assert.Equal((2048, 32, 8, 8192, 64), (t.HiddenSize, t.AttentionHeads, t.QueryGroups, t.FfnHiddenSize, t.HeadDim));
        Assert.Equal((MlpActivation.SwiGlu, NormKind.RmsNorm, false), (t.Activation, t.Normalization, t.AddBiasLinear));
        Assert.Equal(1e-5, t.NormEpsilon);
        Assert.Equal(500000.0, t.RotaryBase);
        Assert.Equal(new Llama3RopeScaling(32, 1, 4, 8192), t.RopeScaling);
    }

    [Fact]
    public void ReadsRopeParametersOfTransformers5()
    {
        var json = Base();
        json.Remove("rope_theta");
        json.Remove("rope_scaling");
        json["rope_parameters"] = new JsonObject
        {
            ["rope_type"] = "llama3",
            ["rope_theta"] = 250000.0,
            ["factor"] = 8.0,
            ["low_freq_factor"] = 1.0,
            ["high_freq_factor"] = 4.0,
            ["original_max_position_embeddings"] = 4096,
        };
        var t = LlamaConfigJson.Parse(json, "config.json").Transformer;
        Assert.Equal(250000.0, t.RotaryBase);
        Assert.Equal(new Llama3RopeScaling(8, 1, 4, 4096), t.RopeScaling);
        json["rope_parameters"] = new JsonObject { ["rope_type"] = "default", ["rope_theta"] = 10000.0 };
        t = LlamaConfigJson.Parse(json, "config.json").Transformer;
        Assert.Equal((10000.0, (Llama3RopeScaling?)null), (t.RotaryBase, t.RopeScaling));
    }

    [Fact]
    public void DefaultsFollowTransformers()
    {
        var json = Base();
        foreach (string key in new[] { "num_key_value_heads", "head_dim", "rope_theta", "rope_scaling", "tie_word_embeddings", "hidden_act" })
        {
            json.Remove(key);
        }
        var c = LlamaConfigJson.Parse(json, "config.json");
        Assert.Equal((32, 64, 10000.0, false), (c.Transformer.QueryGroups, c.Transformer.HeadDim, c.Transformer.RotaryBase, c.ShareEmbeddingsAndOutputWeights));
        Assert.Null(c.Transformer.RopeScaling);
    }

    public static TheoryData<string, string, string> Unsupported => new()
    {
        { "model_type", "\"mixtral\"", "model_type 'mixtral'" },
        { "num_local_experts", "8", "'num_local_experts'" },
        { "attention_bias", "true", "attention_bias" },
        { "mlp_bias", "true", "mlp_bias" },
        { "hidden_act", "\"gelu\"", "hidden_act 'gelu'" },
        { "rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", "rope_scaling.rope_type 'yarn'" },
        { "rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}", "rope_scaling.rope_type 'linear'" },
    };

    [Theory]
    [MemberData(nameof(Unsupported))]
    public void RefusesWhatTheModelDoesNotImplement(string key, string value, string expected)
    {
        var json = Base();
        json[key] = JsonNode.Parse(value);
        var e = Assert.Throws<NotSupportedException>(() => LlamaConfigJson.Parse(json, "some/config.json"));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Contains("some/config.json", e.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, string?, string> Malformed => new()
    {
        { "hidden_size", null, "'hidden_size' is missing" },
        { "hidden_size", "\"big\"", "'hidden_size' is \"big\"" },
        { "num_hidden_layers", "0", "'num_hidden_layers' is 0" },
        { "vocab_size", "3.5", "'vocab_size' is 3.5" },
        { "num_key_value_heads", "5", "num_key_value_heads 5" },
        { "rms_norm_eps", "-1", "rms_norm_eps -1" },
        { "tie_word_embeddings", "\"yes\"", "'tie_word_embeddings'" },
        { "rope_scaling", "[1]", "rope_scaling must be an object" },
        { "rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0}", "'low_freq_factor' is missing" },
        { "rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0, \"high_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192}", "rope_scaling" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void MalformedValuesNameTheirKey(string key, string? value, string expected)
    {
        var json = Base();
        if (value is null)
        {
            json.Remove(key);
        }
        else
        {
            json[key] = JsonNode.Parse(value);
        }
        var e = Assert.Throws<InvalidDataException>(() => LlamaConfigJson.Parse(json, "some/config.json"));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FileErrorsNameTheFile()
    {
        string dir = Directory.CreateTempSubdirectory("mp-config").FullName;
        try
        {
            Assert.Throws<FileNotFoundException>(() => LlamaConfigJson.Read(dir));
            string path = Path.Combine(dir, "config.json");
            File.WriteAllText(path, "{\"hidden_size\": 64,");
            Assert.Contains(path, Assert.Throws<InvalidDataException>(() => LlamaConfigJson.Read(dir)).Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void WrittenConfigReadsBackTheSame()
    {
        var config = LlamaConfigJson.Parse(Base(), "config.json");
        string dir = Directory.CreateTempSubdirectory("mp-config").FullName;
        try
        {
            LlamaConfigJson.Write(config, Path.Combine(dir, "config.json"));
            Assert.Equal(config, LlamaConfigJson.Read(dir));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
