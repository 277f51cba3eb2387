using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Tests.Gpu;
using ModelParallel.Tests.Layers;
using ModelParallel.Tests.Support;
using ModelParallel.Training.Pipeline;

namespace ModelParallel.Tests.Training;

/// <summary>
/// Every schedule on one GPU, each pipeline rank a thread with its own stream exchanging by device copies (the
/// same-device world): bf16 activations and weights, fp32 gradients, against the one-rank CPU model in float64.
/// </summary>
[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public class GpuPipelineTests
{
    private const double Tol = 2e-2;

    /// <summary>Head dimension 64, which the CUDA attention takes.</summary>
    private static readonly TransformerConfig Layer = new(256, AttentionHeads: 4, QueryGroups: 2, FfnHiddenSize: 512);

    private static readonly TokenShape Micro = new(8, 2);

    public static TheoryData<string, int, int, int> Cases => new()
    {
        { "gpipe", 2, 3, 1 }, { "1f1b", 2, 3, 1 }, { "zb-h1", 2, 3, 1 }, { "interleaved-1f1b", 2, 4, 2 },
        { "gpipe", 4, 4, 1 }, { "1f1b", 4, 5, 1 }, { "zb-h1", 4, 5, 1 }, { "interleaved-1f1b", 4, 4, 2 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTheCpuReference(string kind, int pp, int m, int v)
    {
        GpuRequirement.Require();
        var config = new GptConfig(257, 8, Layer, ShareEmbeddingsAndOutputWeights: pp == 2);
        PipelineExecutorTests.AssertMatchesOneRank(ScheduleKinds.Parse(kind), pp, m, 1, false, v, config,
            PipelineLayout.Even(8, pp * v), OneDevice, Micro, Tol);
    }

    /// <summary>Recomputing the first layers of every stage on the GPU changes nothing beyond bf16 rounding.</summary>
    [Theory]
    [InlineData("1f1b", 2)]
    [InlineData("zb-h1", 1)]
    public void RecomputationMatchesTheCpuReference(string kind, int recompute)
    {
        GpuRequirement.Require();
        var config = new GptConfig(257, 8, Layer);
        PipelineExecutorTests.AssertMatchesOneRank(ScheduleKinds.Parse(kind), 2, 4, 1, false, 1, config, PipelineLayout.Even(8, 2),
            OneDevice, Micro, Tol, recompute: recompute);
    }

    /// <summary>The split backward (ZB-H1's I and W) gives the fused backward's gradients (1F1B, same micro-batch order).</summary>
    [Fact]
    public void SplitBackwardEqualsFused()
    {
        GpuRequirement.Require();
        var config = new GptConfig(257, 8, Layer);
        var layout = PipelineLayout.Even(8, 2);
        var fused = PipelineExecutorTests.AssertMatchesOneRank(ScheduleKind.OneFOneB, 2, 4, 1, false, 1, config, layout, OneDevice, Micro, Tol, seed: 11);
        var split = PipelineExecutorTests.AssertMatchesOneRank(ScheduleKind.ZeroBubbleH1, 2, 4, 1, false, 1, config, layout, OneDevice, Micro, Tol, seed: 11);
        foreach (var (name, grad) in fused)
        {
            Numerics.AssertClose(split[name], grad, 1e-6, $"split against fused backward: gradient of {name}");
        }
    }

    private static readonly TestWorld OneDevice = new(DType.BFloat16, (ranks, body) => ThreadWorlds.RunOnOneDevice(ranks, body));
}
