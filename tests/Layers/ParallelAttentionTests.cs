using ModelParallel.Layers;
using ModelParallel.Runtime;

namespace ModelParallel.Tests.Layers;

public class ParallelAttentionTests
{
    internal const int Hidden = 64;
    internal static readonly TokenShape Shape = new(6, 2);

    public static TheoryData<int, bool, int, int, bool> Cases
    {
        get
        {
            var data = new TheoryData<int, bool, int, int, bool>();
            foreach (int tp in new[] { 1, 2, 4 })
            {
                foreach (bool sp in new[] { false, true })
                {
                    // (heads, kvHeads, bias): multi-head; grouped with kv >= TP up to TP 2 and kv < TP at TP 4;
                    // one key/value head for all (replicated on every rank when TP > 1).
                    data.Add(tp, sp, 4, 4, true);
                    data.Add(tp, sp, 8, 2, false);
                    data.Add(tp, sp, 4, 1, true);
                }
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesSingleRankReference(int tp, bool sp, int heads, int kvHeads, bool bias) =>
        LayerHarness.AssertMatchesReference(TestWorld.Cpu(DType.Float32), tp, sp, Build(Hidden, heads, kvHeads, bias), Shape, Hidden, 1e-5);

    internal static Func<ParallelContext, LayerStep> Build(int hidden, int heads, int kvHeads, bool bias) =>
        c => LayerStep.Of(new ParallelAttention(c, "attention", hidden, heads, kvHeads, bias));
}
