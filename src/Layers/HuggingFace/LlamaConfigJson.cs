using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelParallel.Runtime;

namespace ModelParallel.Layers.HuggingFace;

/// <summary>
/// A Hugging Face LlamaForCausalLM config.json read into a <see cref="GptConfig"/> and written back from one.
/// Both rope spellings are read: rope_theta with rope_scaling (transformers 4.x) and rope_parameters (5.x).
/// Malformed files throw <see cref="InvalidDataException"/> and configurations the model does not implement
/// (other architectures, mixtures of experts, attention or MLP biases, activations other than SiLU, rope
/// scalings other than llama3) throw <see cref="NotSupportedException"/>, each naming the file and the key.
/// </summary>
public static class LlamaConfigJson
{
    /// <summary>The configuration in <paramref name="path"/> (a config.json, or a folder holding one).</summary>
    public static GptConfig Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            path = Path.Combine(path, "config.json");
        }
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such file", path);
        }
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new InvalidDataException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
        }
        return Parse(root, path);
    }

    /// <summary>The configuration in the JSON object <paramref name="root"/>; <paramref name="source"/> names it in errors.</summary>
    public static GptConfig Parse(JsonObject root, string source)
    {
        ArgumentNullException.ThrowIfNull(root);
        var reader = new Reader(root, source);
        string modelType = reader.String("model_type", "llama");
        if (modelType != "llama")
        {
            throw new NotSupportedException($"{source}: model_type '{modelType}' is not supported (only 'llama')");
        }
        foreach (string moe in new[] { "num_local_experts", "num_experts", "num_experts_per_tok", "moe_intermediate_size" })
        {
            if (root.ContainsKey(moe) && root[moe] is not null)
            {
                throw new NotSupportedException($"{source}: '{moe}' (mixture of experts) is not supported");
            }
        }
        if (reader.Bool("attention_bias", false))
        {
            throw new NotSupportedException($"{source}: attention_bias true is not supported (linear layers without bias only)");
        }
        if (reader.Bool("mlp_bias", false))
        {
            throw new NotSupportedException($"{source}: mlp_bias true is not supported (linear layers without bias only)");
        }
        string act = reader.String("hidden_act", "silu");
        if (act != "silu")
        {
            throw new NotSupportedException($"{source}: hidden_act '{act}' is not supported (only 'silu', SwiGLU)");
        }
        int hidden = reader.Positive("hidden_size");
        int heads = reader.Positive("num_attention_heads");
        int kvHeads = reader.Positive("num_key_value_heads", heads);
        int ffn = reader.Positive("intermediate_size");
        int layers = reader.Positive("num_hidden_layers");
        int vocab = reader.Positive("vocab_size");
        double eps = reader.Double("rms_norm_eps", 1e-6);
        if (!(eps > 0) || !double.IsFinite(eps))
        {
            throw new InvalidDataException($"{source}: rms_norm_eps {eps} must be positive");
        }
        int? headDim = root["head_dim"] is null ? null : reader.Positive("head_dim");
        if (headDim is null && hidden % heads != 0)
        {
            throw new InvalidDataException($"{source}: hidden_size {hidden} is not a multiple of num_attention_heads {heads} and head_dim is not given");
        }
        if (heads % kvHeads != 0)
        {
            throw new InvalidDataException($"{source}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
        }
        bool tied = reader.Bool("tie_word_embeddings", false);
        var (theta, scaling) = ReadRope(root, reader, source);
        var transformer = new TransformerConfig(hidden, heads, kvHeads, ffn, MlpActivation.SwiGlu, NormKind.RmsNorm,
            AddBiasLinear: false, NormEpsilon: eps, RotaryBase: theta, KvChannels: headDim, RopeScaling: scaling);
        return new GptConfig(vocab, layers, transformer, tied);
    }

    /// <summary>
    /// Writes <paramref name="config"/> as a LlamaForCausalLM config.json (transformers 4.x keys, which 5.x also reads).
    /// </summary>
    public static void Write(GptConfig config, string path, int maxPositionEmbeddings = 4096, string dtype = "bfloat16")
    {
        ArgumentNullException.ThrowIfNull(config);
        var t = config.Transformer;
        if (t.Activation != MlpActivation.SwiGlu || t.Normalization != NormKind.RmsNorm || t.AddBiasLinear)
        {
            throw new NotSupportedException(
                $"a Llama config needs SwiGLU, RMSNorm and no biases; this model has {t.Activation}, {t.Normalization}, bias {t.AddBiasLinear}");
        }
        var root = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"),
            ["model_type"] = "llama",
            ["hidden_size"] = t.HiddenSize,
            ["intermediate_size"] = t.FfnHiddenSize,
            ["num_attention_heads"] = t.AttentionHeads,
            ["num_key_value_heads"] = t.QueryGroups,
            ["head_dim"] = t.HeadDim,
            ["num_hidden_layers"] = config.Layers,
            ["vocab_size"] = config.VocabSize,
            ["rms_norm_eps"] = t.NormEpsilon,
            ["rope_theta"] = t.RotaryBase,
            ["rope_scaling"] = t.RopeScaling is { } s
                ? new JsonObject
                {
                    ["rope_type"] = "llama3",
                    ["factor"] = s.Factor,
                    ["low_freq_factor"] = s.LowFreqFactor,
                    ["high_freq_factor"] = s.HighFreqFactor,
                    ["original_max_position_embeddings"] = s.OriginalMaxPositions,
                }
                : null,
            ["tie_word_embeddings"] = config.ShareEmbeddingsAndOutputWeights,
            ["max_position_embeddings"] = maxPositionEmbeddings,
            ["hidden_act"] = "silu",
            ["attention_bias"] = false,
            ["mlp_bias"] = false,
            ["torch_dtype"] = dtype,
        };
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null)
        {
            Directory.CreateDirectory(folder);
        }
        File.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>Theta and the llama3 scaling from rope_parameters (5.x) or rope_theta and rope_scaling (4.x).</summary>
    private static (double Theta, Llama3RopeScaling? Scaling) ReadRope(JsonObject root, Reader reader, string source)
    {
        string key;
        JsonObject? rope;
        double theta;
        if (root["rope_parameters"] is JsonObject parameters)
        {
            key = "rope_parameters";
            rope = parameters;
            theta = new Reader(parameters, $"{source}: rope_parameters").Double("rope_theta", reader.Double("rope_theta", 10000));
        }
        else
        {
            key = "rope_scaling";
            rope = root["rope_scaling"] switch
            {
                null => null,
                JsonObject o => o,
                _ => throw new InvalidDataException($"{source}: rope_scaling must be an object or null"),
            };
            theta = reader.Double("rope_theta", 10000);
        }
        if (!(theta > 1) || !double.IsFinite(theta))
        {
            throw new InvalidDataException($"{source}: rope_theta {theta} must be greater than 1");
        }
        if (rope is null)
        {
            return (theta, null);
        }
        var r = new Reader(rope, $"{source}: {key}");
        string type = rope.ContainsKey("rope_type") ? r.String("rope_type", "default") : r.String("type", "default");
        switch (type)
        {
            case "default":
                return (theta, null);
            case "llama3":
                try
                {
                    return (theta, new Llama3RopeScaling(r.Double("factor"), r.Double("low_freq_factor"), r.Double("high_freq_factor"),
                        r.Positive("original_max_position_embeddings")));
                }
                catch (ArgumentException e)
                {
                    throw new InvalidDataException($"{source}: {key}: {e.Message}", e);
                }
            default:
                throw new NotSupportedException($"{source}: {key}.rope_type '{type}' is not supported (only 'default' and 'llama3')");
        }
    }

    /// <summary>Typed reads of one JSON object's keys, with errors naming the source and the key.</summary>
    private sealed class Reader(JsonObject obj, string source)
    {
        public string String(string key, string fallback) => Get(key) switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue(out string? s) => s,
            var n => throw Bad(key, n, "a string"),
        };

        public bool Bool(string key, bool fallback) => Get(key) switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue(out bool b) => b,
            var n => throw Bad(key, n, "true or false"),
        };

        public double Double(string key, double? fallback = null)
        {
            var node = Get(key);
            if (node is null)
            {
                return fallback ?? throw new InvalidDataException($"{source}: '{key}' is missing");
            }
            if (Number(node) is { } d && double.IsFinite(d))
            {
                return d;
            }
            throw Bad(key, node, "a number");
        }

        public int Positive(string key, int? fallback = null)
        {
            var node = Get(key);
            if (node is null)
            {
                return fallback ?? throw new InvalidDataException($"{source}: '{key}' is missing");
            }
            if (Number(node) is { } d && d >= 1 && d <= int.MaxValue && d == Math.Floor(d))
            {
                return (int)d;
            }
            throw Bad(key, node, "a positive integer");
        }

        /// <summary>The node's value when it is a JSON number, whatever CLR type holds it.</summary>
        private static double? Number(JsonNode node) =>
            node.GetValueKind() == JsonValueKind.Number
                ? double.Parse(node.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture)
                : null;

        private JsonNode? Get(string key) => obj.TryGetPropertyValue(key, out var node) ? node : null;

        private InvalidDataException Bad(string key, JsonNode? node, string expected) =>
            new($"{source}: '{key}' is {node?.ToJsonString() ?? "null"}; expected {expected}");
    }
}
