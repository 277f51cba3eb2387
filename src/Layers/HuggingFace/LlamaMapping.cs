namespace ModelParallel.Layers.HuggingFace;

/// <summary>A tensor of a Hugging Face Llama checkpoint: its name and shape ([rows] for norms, [rows, columns] otherwise).</summary>
public sealed record HfTensor(string Name, int Rows, int Columns, bool IsVector)
{
    public long Count => (long)Rows * Columns;

    public long[] Shape => IsVector ? [Rows] : [Rows, Columns];

    public string ShapeText => IsVector ? $"[{Rows}]" : $"[{Rows}, {Columns}]";
}

/// <summary>Rows [FirstRow, FirstRow + Rows) of a model parameter are rows [HfFirstRow, HfFirstRow + Rows) of <see cref="Source"/>.</summary>
public readonly record struct RowSegment(int FirstRow, int Rows, HfTensor Source, int HfFirstRow);

/// <summary>
/// Where the rows of one model parameter come from in a Hugging Face checkpoint. Rows no segment covers are the
/// vocabulary padding (zeros, never used).
/// </summary>
public sealed record ParameterMapping(string Parameter, int Rows, int Columns, IReadOnlyList<RowSegment> Segments)
{
    /// <summary>The segment holding <paramref name="row"/>, or null for a padding row.</summary>
    public RowSegment? Find(int row)
    {
        foreach (var s in Segments)
        {
            if (row >= s.FirstRow && row < s.FirstRow + s.Rows)
            {
                return s;
            }
        }
        return null;
    }
}

/// <summary>
/// Hugging Face LlamaForCausalLM names and layouts onto <see cref="GptModel"/>'s parameters, one row map used in both
/// directions (loading and export):
/// <list type="bullet">
/// <item>model.embed_tokens.weight [vocab, hidden] -> embedding.word_embeddings.weight (rows past vocab are padding);
/// lm_head.weight -> output_layer.weight, absent with tied embeddings;</item>
/// <item>q_proj [heads*hd, hidden], k_proj and v_proj [kv*hd, hidden] -> linear_qkv.weight in Megatron's order: for each
/// query group g, the rows of its query heads g*heads/kv ... (g+1)*heads/kv - 1, then key head g, then value head g
/// (Hugging Face's repeat_kv gives query head h the key/value head h / (heads / kv), the same grouping);</item>
/// <item>gate_proj and up_proj [ffn, hidden] -> linear_fc1.weight = [gate; up]; o_proj -> linear_proj.weight;
/// down_proj -> linear_fc2.weight;</item>
/// <item>input_layernorm -> input_layernorm, post_attention_layernorm -> pre_mlp_layernorm, model.norm -> final_layernorm.</item>
/// </list>
/// </summary>
public static class LlamaMapping
{
    public const string EmbedTokens = "model.embed_tokens.weight";
    public const string LmHead = "lm_head.weight";
    public const string FinalNorm = "model.norm.weight";

    /// <summary>Every model parameter's mapping, in the model's parameter order.</summary>
    public static IReadOnlyList<ParameterMapping> For(GptConfig config, int paddedVocabSize)
    {
        ArgumentNullException.ThrowIfNull(config);
        var t = config.Transformer;
        int hidden = t.HiddenSize, hd = t.HeadDim, heads = t.AttentionHeads, kv = t.QueryGroups, ffn = t.FfnHiddenSize;
        int queryPerGroup = heads / kv;
        var list = new List<ParameterMapping>();
        var embed = new HfTensor(EmbedTokens, config.VocabSize, hidden, false);
        list.Add(Whole("embedding.word_embeddings.weight", paddedVocabSize, hidden, embed));
        for (int i = 0; i < config.Layers; i++)
        {
            string hf = $"model.layers.{i}", ours = $"decoder.layers.{i}";
            list.Add(Whole($"{ours}.input_layernorm.weight", hidden, 1, new HfTensor($"{hf}.input_layernorm.weight", hidden, 1, true)));
            var q = new HfTensor($"{hf}.self_attn.q_proj.weight", heads * hd, hidden, false);
            var k = new HfTensor($"{hf}.self_attn.k_proj.weight", kv * hd, hidden, false);
            var v = new HfTensor($"{hf}.self_attn.v_proj.weight", kv * hd, hidden, false);
            var qkv = new List<RowSegment>();
            int groupRows = (queryPerGroup + 2) * hd;
            for (int g = 0; g < kv; g++)
            {
                int start = g * groupRows;
                qkv.Add(new RowSegment(start, queryPerGroup * hd, q, g * queryPerGroup * hd));
                qkv.Add(new RowSegment(start + queryPerGroup * hd, hd, k, g * hd));
                qkv.Add(new RowSegment(start + (queryPerGroup + 1) * hd, hd, v, g * hd));
            }
            list.Add(new ParameterMapping($"{ours}.self_attention.linear_qkv.weight", kv * groupRows, hidden, qkv));
            list.Add(Whole($"{ours}.self_attention.linear_proj.weight", hidden, heads * hd,
                new HfTensor($"{hf}.self_attn.o_proj.weight", hidden, heads * hd, false)));
            list.Add(Whole($"{ours}.pre_mlp_layernorm.weight", hidden, 1, new HfTensor($"{hf}.post_attention_layernorm.weight", hidden, 1, true)));
            var gate = new HfTensor($"{hf}.mlp.gate_proj.weight", ffn, hidden, false);
            var up = new HfTensor($"{hf}.mlp.up_proj.weight", ffn, hidden, false);
            list.Add(new ParameterMapping($"{ours}.mlp.linear_fc1.weight", 2 * ffn, hidden,
                [new RowSegment(0, ffn, gate, 0), new RowSegment(ffn, ffn, up, 0)]));
            list.Add(Whole($"{ours}.mlp.linear_fc2.weight", hidden, ffn, new HfTensor($"{hf}.mlp.down_proj.weight", hidden, ffn, false)));
        }
        list.Add(Whole("decoder.final_layernorm.weight", hidden, 1, new HfTensor(FinalNorm, hidden, 1, true)));
        if (!config.ShareEmbeddingsAndOutputWeights)
        {
            list.Add(Whole("output_layer.weight", paddedVocabSize, hidden, new HfTensor(LmHead, config.VocabSize, hidden, false)));
        }
        return list;
    }

    /// <summary>The Hugging Face tensors the mappings read, each once, in mapping order.</summary>
    public static IReadOnlyList<HfTensor> Tensors(IReadOnlyList<ParameterMapping> mappings) =>
        mappings.SelectMany(m => m.Segments.Select(s => s.Source)).DistinctBy(t => t.Name).ToList();

    /// <summary>
    /// Full model tensors (weights or gradients, by parameter name, as <see cref="ParallelLayerExtensions.Save"/>
    /// gives them) rearranged into Hugging Face tensors by name; vocabulary padding dropped.
    /// </summary>
    public static Dictionary<string, double[]> ToHuggingFace(IReadOnlyList<ParameterMapping> mappings,
        IReadOnlyDictionary<string, double[]> full)
    {
        ArgumentNullException.ThrowIfNull(mappings);
        ArgumentNullException.ThrowIfNull(full);
        var result = Tensors(mappings).ToDictionary(t => t.Name, t => new double[t.Count]);
        foreach (var m in mappings)
        {
            if (!full.TryGetValue(m.Parameter, out var values))
            {
                throw new ArgumentException($"no tensor for parameter '{m.Parameter}'", nameof(full));
            }
            if (values.LongLength != (long)m.Rows * m.Columns)
            {
                throw new ArgumentException($"{m.Parameter}: {values.LongLength} elements; expected {m.Rows} x {m.Columns}", nameof(full));
            }
            foreach (var s in m.Segments)
            {
                values.AsSpan(checked(s.FirstRow * m.Columns), checked(s.Rows * m.Columns))
                    .CopyTo(result[s.Source.Name].AsSpan(checked(s.HfFirstRow * m.Columns)));
            }
        }
        return result;
    }

    private static ParameterMapping Whole(string parameter, int rows, int columns, HfTensor source) =>
        new(parameter, rows, columns, [new RowSegment(0, source.Rows, source, 0)]);
}
