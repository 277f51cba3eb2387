using ModelParallel.Layers;
using ModelParallel.Runtime;

namespace ModelParallel.Tests.Layers;

public class TransformerLayerTests
{
    internal const int Hidden = 64;
    internal static readonly TokenShape Shape = new(6, 2);

    /// <summary>SwiGLU, RMSNorm, grouped-query attention with 2 key/value heads (fewer than TP at TP 4), no biases.</summary>
    internal static readonly TransformerConfig Llama = new(Hidden, AttentionHeads: 8, QueryGroups: 2, FfnHiddenSize: 128);

    /// <summary>GeLU, LayerNorm, multi-head attention, biases.</summary>
    internal static readonly TransformerConfig Gpt2 = new(Hidden, AttentionHeads: 4, QueryGroups: 4, FfnHiddenSize: 128,
        MlpActivation.Gelu, NormKind.LayerNorm, AddBiasLinear: true);

    public static TheoryData<int, bool, string> Cases
    {
        get
        {
            var data = new TheoryData<int, bool, string>();
            foreach (int tp in new[] { 1, 2, 4 })
            {
                foreach (bool sp in new[] { false, true })
                {
                    data.Add(tp, sp, nameof(Llama));
                    data.Add(tp, sp, nameof(Gpt2));
                }
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesSingleRankReference(int tp, bool sp, string config) =>
        LayerHarness.AssertMatchesReference(TestWorld.Cpu(DType.Float32), tp, sp, Build(Config(config)), Shape, Hidden, 1e-5);

    internal static TransformerConfig Config(string name) => name == nameof(Llama) ? Llama : Gpt2;

    internal static Func<ParallelContext, LayerStep> Build(TransformerConfig config) =>
        c => LayerStep.Of(new TransformerLayer(c, "layer", config));
}
