using ModelParallel.Layers;
using ModelParallel.Runtime;

namespace ModelParallel.Tests.Layers;

public class ParallelMlpTests
{
    internal const int Hidden = 64;
    internal const int Ffn = 128;
    internal static readonly TokenShape Shape = new(6, 2);

    public static TheoryData<int, bool, MlpActivation, bool> Cases
    {
        get
        {
            var data = new TheoryData<int, bool, MlpActivation, bool>();
            foreach (int tp in new[] { 1, 2, 4 })
            {
                foreach (bool sp in new[] { false, true })
                {
                    data.Add(tp, sp, MlpActivation.Gelu, true);
                    data.Add(tp, sp, MlpActivation.SwiGlu, sp);
                }
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesSingleRankReference(int tp, bool sp, MlpActivation activation, bool bias) =>
        LayerHarness.AssertMatchesReference(TestWorld.Cpu(DType.Float32), tp, sp, Build(activation, bias), Shape, Hidden, 1e-5);

    internal static Func<ParallelContext, LayerStep> Build(MlpActivation activation, bool bias) =>
        c => LayerStep.Of(new ParallelMlp(c, "mlp", Hidden, Ffn, activation, bias));
}
