namespace ModelParallel.Layers;

/// <summary>A GPT-style stack: vocabulary, number of transformer layers and the layers' configuration.</summary>
/// <param name="ShareEmbeddingsAndOutputWeights">The output layer computes logits with the word-embedding table
/// (Megatron's share_embeddings_and_output_weights, Hugging Face's tie_word_embeddings): one weight, whose gradient
/// sums both uses.</param>
public sealed record GptConfig(int VocabSize, int Layers, TransformerConfig Transformer, bool ShareEmbeddingsAndOutputWeights = false);
