namespace ModelParallel.Layers;

/// <summary>A GPT-style stack: vocabulary, number of transformer layers and the layers' configuration.</summary>
public sealed record GptConfig(int VocabSize, int Layers, TransformerConfig Transformer);
