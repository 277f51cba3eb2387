namespace ModelParallel.Planner;

/// <summary>
/// Published model shapes. GPT-3 175B (Brown et al. 2020, table 2.1): LayerNorm, biases, GeLU,
/// learned positions, tied embeddings, dropout. Llama 2 (Touvron et al. 2023) and Llama 3 (Dubey et al.
/// 2024): RMSNorm, no biases, SwiGLU, rotary positions, untied embeddings, no dropout, grouped-query
/// attention for Llama-2 70B and all of Llama 3.
/// </summary>
public static class ModelPresets
{
    public static IReadOnlyList<ModelSpec> All { get; } =
    [
        new()
        {
            Name = "gpt3-175b", Layers = 96, Hidden = 12288, Heads = 96, KvHeads = 96, Ffn = 49152,
            Activation = FfnActivation.Gelu, Vocab = 50257, SequenceLength = 2048, Norm = Normalization.LayerNorm,
            LinearBiases = true, TiedEmbeddings = true, LearnedPositions = true, Dropout = true,
        },
        Llama("llama2-7b", 32, 4096, 32, 32, 11008, 32000, 4096),
        Llama("llama2-13b", 40, 5120, 40, 40, 13824, 32000, 4096),
        Llama("llama2-70b", 80, 8192, 64, 8, 28672, 32000, 4096),
        Llama("llama3-8b", 32, 4096, 32, 8, 14336, 128256, 8192),
        Llama("llama3-70b", 80, 8192, 64, 8, 28672, 128256, 8192),
        Llama("llama3-405b", 126, 16384, 128, 8, 53248, 128256, 8192),
    ];

    /// <summary>The preset called <paramref name="name"/> (case, '-', '_' and '.' ignored: "Llama-3-70B" works).</summary>
    public static ModelSpec Get(string name) =>
        All.FirstOrDefault(m => Key(m.Name) == Key(name))
        ?? throw new ArgumentException(
            $"unknown model preset '{name}'; known: {string.Join(", ", All.Select(m => m.Name))}");

    internal static string Key(string name) =>
        new(name.ToLowerInvariant().Where(c => c is not ('-' or '_' or '.' or ' ')).ToArray());

    private static ModelSpec Llama(string name, int layers, int hidden, int heads, int kvHeads, int ffn, int vocab, int seq) => new()
    {
        Name = name, Layers = layers, Hidden = hidden, Heads = heads, KvHeads = kvHeads, Ffn = ffn,
        Activation = FfnActivation.SwiGlu, Vocab = vocab, SequenceLength = seq,
    };
}
