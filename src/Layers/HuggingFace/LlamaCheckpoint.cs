using ModelParallel.Runtime.SafeTensors;

namespace ModelParallel.Layers.HuggingFace;

/// <summary>What one rank read from a Hugging Face checkpoint.</summary>
/// <param name="Tensors">Hugging Face tensors the model takes.</param>
/// <param name="Elements">Elements this rank read (its shards only).</param>
/// <param name="Ignored">Tensors of the file the model does not take (rotary caches, a tied lm_head).</param>
public sealed record LlamaLoadReport(int Tensors, long Elements, IReadOnlyList<string> Ignored);

/// <summary>
/// Loading a <see cref="GptModel"/> from a Hugging Face Llama checkpoint (safetensors, names of
/// <see cref="LlamaMapping"/>) and exporting it back. Loading reads only this rank's rows and columns of each tensor
/// from the memory-mapped files; export gathers the full weights (a collective over the tensor-parallel group) and
/// writes them from tensor-parallel rank 0.
/// </summary>
public static class LlamaCheckpoint
{
    /// <summary>Hugging Face's default largest shard when saving: 5 GB.</summary>
    public const long DefaultShardBytes = 5_000_000_000;

    /// <summary>
    /// Sets every parameter of <paramref name="model"/> from <paramref name="reader"/>. Before reading anything it checks
    /// that every tensor the model needs is present with its shape and a floating-point dtype, and that the file holds
    /// nothing the model would silently drop (biases, experts, other layers); errors name the tensor.
    /// </summary>
    public static LlamaLoadReport Load(GptModel model, ITensorReader reader)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Load(model.Config, model.PaddedVocabSize, model.Parameters, reader);
    }

    /// <summary>
    /// Sets <paramref name="parameters"/> (any part of a model of <paramref name="config"/>, e.g. one pipeline stage's,
    /// named like <see cref="GptModel"/>'s) from <paramref name="reader"/>, each rank reading only its shard.
    /// </summary>
    public static LlamaLoadReport Load(GptConfig config, int paddedVocabSize, IEnumerable<Parameter> parameters, ITensorReader reader)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(reader);
        var ignored = Validate(config, reader);
        var mappings = LlamaMapping.For(config, paddedVocabSize);
        var byName = mappings.ToDictionary(m => m.Parameter);
        long elements = 0;
        foreach (var p in parameters)
        {
            if (!byName.TryGetValue(p.Name, out var m))
            {
                throw new InvalidOperationException($"parameter '{p.Name}' has no Hugging Face counterpart");
            }
            p.LoadRows((row, firstColumn, destination) =>
            {
                if (m.Find(row) is { } s)
                {
                    long offset = checked(((long)(s.HfFirstRow + row - s.FirstRow) * s.Source.Columns) + firstColumn);
                    reader.Read(s.Source.Name, offset, destination);
                }
                else
                {
                    destination.Clear();
                }
            });
            elements += p.LocalCount;
        }
        return new LlamaLoadReport(LlamaMapping.Tensors(mappings).Count, elements, ignored);
    }

    /// <summary>
    /// Checks that <paramref name="reader"/> holds every tensor <paramref name="config"/> needs, with its shape and a
    /// floating-point dtype, and nothing the model would silently drop; returns the tensors it may ignore (rotary
    /// caches, an lm_head equal to the tied embeddings). Reads no data.
    /// </summary>
    public static IReadOnlyList<string> Validate(GptConfig config, ITensorReader reader)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(reader);
        var needed = LlamaMapping.Tensors(LlamaMapping.For(config, config.VocabSize));
        foreach (var t in needed)
        {
            if (!reader.Contains(t.Name))
            {
                throw new InvalidDataException($"checkpoint has no tensor '{t.Name}' {t.ShapeText}");
            }
            var info = reader.Info(t.Name);
            if (info.DType is SafeTensorsDType.I32 or SafeTensorsDType.I64)
            {
                throw new InvalidDataException($"tensor '{t.Name}' has integer dtype {info.DType}; expected a floating-point weight");
            }
            if (!info.Shape.SequenceEqual(t.Shape))
            {
                throw new InvalidDataException(
                    $"tensor '{t.Name}' has shape [{string.Join(", ", info.Shape)}]; the config gives {t.ShapeText}");
            }
        }
        var neededNames = needed.Select(t => t.Name).ToHashSet();
        var ignored = new List<string>();
        foreach (string name in reader.Names.Order(StringComparer.Ordinal))
        {
            if (neededNames.Contains(name))
            {
                continue;
            }
            if (name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)
                || (name == LlamaMapping.LmHead && config.ShareEmbeddingsAndOutputWeights))
            {
                ignored.Add(name);
                continue;
            }
            throw new InvalidDataException($"tensor '{name}' is not part of a LlamaForCausalLM with this config " +
                "(a bias, an expert or a layer beyond num_hidden_layers?)");
        }
        return ignored;
    }

    /// <summary>
    /// Writes <paramref name="model"/> as a Hugging Face model folder (config.json and safetensors shards with an index
    /// when larger than <paramref name="maxShardBytes"/>) in <paramref name="dtype"/>. Every rank of the tensor-parallel
    /// group must call it: each parameter is gathered in turn (a collective), and rank 0 writes it and lets it go, so
    /// the host holds one full parameter at a time.
    /// </summary>
    public static void Export(GptModel model, string folder, SafeTensorsDType dtype, long maxShardBytes = DefaultShardBytes)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (dtype is not (SafeTensorsDType.F64 or SafeTensorsDType.F32 or SafeTensorsDType.BF16 or SafeTensorsDType.F16))
        {
            throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "weights are exported as F64, F32, BF16 or F16");
        }
        var parameters = model.Parameters.ToDictionary(p => p.Name);
        if (model.Context.TensorParallelRank != 0)
        {
            // The gathers rank 0's writer asks for, in the same order.
            foreach (var p in model.Parameters)
            {
                p.Save();
            }
            return;
        }
        // Mappings follow the model's parameter order, so rank 0's writer gathers the parameters in that order too.
        string? current = null;
        Dictionary<string, double[]> hf = [];
        var entries = new List<SafeTensorEntry>();
        foreach (var m in LlamaMapping.For(model.Config, model.PaddedVocabSize))
        {
            foreach (var t in LlamaMapping.Tensors([m]))
            {
                entries.Add(new SafeTensorEntry(t.Name, dtype, t.Shape, () =>
                {
                    if (current != m.Parameter)
                    {
                        hf = LlamaMapping.ToHuggingFace([m], new Dictionary<string, double[]> { [m.Parameter] = parameters[m.Parameter].Save() });
                        current = m.Parameter;
                    }
                    return hf[t.Name];
                }));
            }
        }
        Directory.CreateDirectory(folder);
        SafeTensorsWriter.WriteSharded(folder, entries, maxShardBytes);
        LlamaConfigJson.Write(model.Config, Path.Combine(folder, "config.json"), dtype: dtype switch
        {
            SafeTensorsDType.F64 => "float64",
            SafeTensorsDType.F32 => "float32",
            SafeTensorsDType.F16 => "float16",
            _ => "bfloat16",
        });
    }
}
