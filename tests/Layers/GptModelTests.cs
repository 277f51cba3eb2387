using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Layers;

/// <summary>Embedding, two transformer layers, final norm, output layer and vocab-parallel cross-entropy, end to end.</summary>
public class GptModelTests
{
    internal static readonly TokenShape Shape = new(6, 2);

    internal static GptConfig Config(int vocab) => new(vocab, 2, TransformerLayerTests.Llama);

    public static TheoryData<int, bool> Cases => new() { { 1, false }, { 1, true }, { 2, false }, { 2, true }, { 4, false }, { 4, true } };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesSingleRankReference(int tp, bool sp) => AssertMatchesReference(TestWorld.Cpu(DType.Float32), tp, sp, Config(96), 1e-5);

    [Theory]
    [InlineData(2, false)]
    [InlineData(4, true)]
    public void PaddedVocabularyComputesTheSameLoss(int tp, bool sp) => AssertMatchesReference(TestWorld.Cpu(DType.Float32), tp, sp, Config(97), 1e-5);

    /// <summary>
    /// The reference at TP = 1 in float64 on the CPU has the unpadded vocabulary; the run at <paramref name="tp"/> on
    /// <paramref name="world"/> pads the embedding and output weights with random rows that must change nothing and
    /// receive no gradient.
    /// </summary>
    internal static GptRun[] AssertMatchesReference(TestWorld world, int tp, bool sp, GptConfig config, double tol)
    {
        var rng = TestRandom.Create();
        int vocab = config.VocabSize;
        var weights = world.Representable(RandomWeights.For(rng, c => new GptModel(c, config)));
        var ids = GptRun.RandomTokens(rng, Shape.Tokens, vocab);
        var targets = GptRun.RandomTokens(rng, Shape.Tokens, vocab);
        var reference = GptRun.Run(TestWorld.Cpu(DType.Float64), 1, false, config, weights, ids, targets, Shape)[0];
        int padded = VocabParallelEmbedding.PaddedVocabSize(vocab, tp);
        int hidden = config.Transformer.HiddenSize;
        var paddedWeights = weights.ToDictionary(w => w.Key, w => IsVocabWeight(w.Key)
            ? [.. w.Value, .. Numerics.RandomArray(rng, (padded - vocab) * hidden)]
            : w.Value);
        var runs = GptRun.Run(world, tp, sp, config, paddedWeights, ids, targets, Shape);
        string what = $"TP={tp}{(sp ? " SP" : "")} vocab {vocab} padded to {padded}";
        for (int r = 0; r < tp; r++)
        {
            Numerics.AssertClose(runs[r].Loss, reference.Loss, tol, $"{what} rank {r} loss");
            foreach (var (name, expected) in reference.Grads)
            {
                var grad = runs[r].Grads[name];
                if (IsVocabWeight(name))
                {
                    Assert.All(grad[(vocab * hidden)..], g => Assert.Equal(0.0, g));
                    grad = grad[..(vocab * hidden)];
                }
                Numerics.AssertClose(grad, expected, tol, $"{what} rank {r} gradient of {name}");
            }
        }
        return runs;
    }

    private static bool IsVocabWeight(string name) => name is "embedding.word_embeddings.weight" or "output_layer.weight";
}
