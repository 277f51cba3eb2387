using ModelParallel.Layers;
using ModelParallel.Runtime;

namespace ModelParallel.Tests.Layers;

/// <summary>
/// Collectives per layer equal Megatron's: one all-reduce forward and one backward for the MLP and for attention,
/// two and two for a transformer layer; with sequence parallelism an all-gather and a reduce-scatter in their
/// place. Bytes are those of the full [tokens, hidden] activation.
/// </summary>
public class CommunicationCountTests
{
    private const int Hidden = 64;
    private static readonly long ActivationBytes = ParallelMlpTests.Shape.Tokens * Hidden * sizeof(float);

    public static TheoryData<int, bool> Cases => new() { { 1, false }, { 1, true }, { 2, false }, { 2, true }, { 4, false }, { 4, true } };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MlpIssuesOneCollectivePerDirection(int tp, bool sp)
    {
        var runs = LayerHarness.AssertMatchesReference(TestWorld.Cpu(DType.Float32), tp, sp,
            ParallelMlpTests.Build(MlpActivation.SwiGlu, bias: true), ParallelMlpTests.Shape, Hidden, 1e-5);
        AssertPerDirection(runs.Select(r => (r.Forward, r.Backward)), tp, sp, 1, ActivationBytes);
        Assert.All(runs, r => Assert.Equal(0, r.GradientSync.TotalCount));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void AttentionIssuesOneCollectivePerDirection(int tp, bool sp)
    {
        var runs = LayerHarness.AssertMatchesReference(TestWorld.Cpu(DType.Float32), tp, sp,
            ParallelAttentionTests.Build(Hidden, 8, 4, bias: true), ParallelAttentionTests.Shape, Hidden, 1e-5);
        AssertPerDirection(runs.Select(r => (r.Forward, r.Backward)), tp, sp, 1, ActivationBytes);
        Assert.All(runs, r => Assert.Equal(0, r.GradientSync.TotalCount));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TransformerLayerIssuesTwoCollectivesPerDirection(int tp, bool sp)
    {
        var config = TransformerLayerTests.Gpt2;
        var runs = LayerHarness.AssertMatchesReference(TestWorld.Cpu(DType.Float32), tp, sp,
            TransformerLayerTests.Build(config), TransformerLayerTests.Shape, Hidden, 1e-5);
        AssertPerDirection(runs.Select(r => (r.Forward, r.Backward)), tp, sp, 2, ActivationBytes);
        foreach (var run in runs)
        {
            // Sequence parallelism leaves the two LayerNorms' weights and biases with partial gradients: one packed all-reduce.
            var expected = sp && tp > 1 ? new CollectiveTally(1, 4L * Hidden * sizeof(float)) : new CollectiveTally(0, 0);
            Assert.Equal(expected, run.GradientSync[CollectiveKind.AllReduce]);
            Assert.Equal(expected.Count, run.GradientSync.TotalCount);
        }
    }

    [Fact]
    public void ReplicatedKeyValueHeadsSumTheirGradientsOverTheirReplicas()
    {
        // 2 key/value heads at TP 4: each is held by 2 ranks; head dim 8, no bias.
        var config = TransformerLayerTests.Llama;
        var runs = LayerHarness.AssertMatchesReference(TestWorld.Cpu(DType.Float32), 4, true,
            TransformerLayerTests.Build(config), TransformerLayerTests.Shape, Hidden, 1e-5);
        long kvRows = 2 * (Hidden / config.AttentionHeads);
        foreach (var run in runs)
        {
            Assert.Equal(new CollectiveTally(2, (kvRows * Hidden + 2 * Hidden) * sizeof(float)), run.GradientSync[CollectiveKind.AllReduce]);
            Assert.Equal(2, run.GradientSync.TotalCount);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GptModelIssuesMegatronsCollectives(int tp, bool sp)
    {
        var runs = GptModelTests.AssertMatchesReference(TestWorld.Cpu(DType.Float32), tp, sp, GptModelTests.Config(96), 1e-5);
        int tokens = GptModelTests.Shape.Tokens;
        const int layers = 2;
        foreach (var run in runs)
        {
            if (tp == 1)
            {
                Assert.Equal(0, run.Forward.TotalCount + run.Backward.TotalCount + run.GradientSync.TotalCount);
                continue;
            }
            // Cross-entropy: the row maxima, then the sums of exponentials with the target logits.
            long lossBytes = 3L * tokens * sizeof(float);
            if (sp)
            {
                // Embedding reduce-scatter, two per layer each way, the output layer's all-gather.
                var pairs = new CollectiveTally(2 * layers + 1, (2 * layers + 1) * ActivationBytes);
                Assert.Equal(pairs, run.Forward[CollectiveKind.AllGather]);
                Assert.Equal(pairs, run.Forward[CollectiveKind.ReduceScatter]);
                Assert.Equal(new CollectiveTally(2, lossBytes), run.Forward[CollectiveKind.AllReduce]);
                Assert.Equal(pairs, run.Backward[CollectiveKind.AllGather]);
                Assert.Equal(pairs, run.Backward[CollectiveKind.ReduceScatter]);
                Assert.Equal(0, run.Backward[CollectiveKind.AllReduce].Count);
            }
            else
            {
                Assert.Equal(new CollectiveTally(2 * layers + 3, (2 * layers + 1) * ActivationBytes + lossBytes), run.Forward[CollectiveKind.AllReduce]);
                Assert.Equal(2 * layers + 3, run.Forward.TotalCount);
                Assert.Equal(new CollectiveTally(2 * layers + 1, (2 * layers + 1) * ActivationBytes), run.Backward[CollectiveKind.AllReduce]);
                Assert.Equal(2 * layers + 1, run.Backward.TotalCount);
            }
        }
    }

    [Fact]
    public void SummaryReadsAsCountsAndBytes()
    {
        var log = new CommunicationLog();
        log.Record("layer.attention", CommunicationPhase.Forward, CollectiveKind.AllReduce, 4096);
        log.Record("layer.mlp", CommunicationPhase.Forward, CollectiveKind.AllReduce, 4096);
        log.Record("layer.mlp", CommunicationPhase.Backward, CollectiveKind.AllGather, 1024);
        log.Record("layer.mlp", CommunicationPhase.Backward, CollectiveKind.AllGather, 2048);
        log.Record("layers.mlp", CommunicationPhase.Forward, CollectiveKind.ReduceScatter, 8);
        Assert.Equal("2 all-reduces of 4096 B", log.Summarize(CommunicationPhase.Forward, "layer").ToString());
        Assert.Equal("1 all-reduce of 4096 B", log.Summarize(CommunicationPhase.Forward, "layer.mlp").ToString());
        Assert.Equal("2 all-gathers, 3072 B in total", log.Summarize(CommunicationPhase.Backward, "layer").ToString());
        Assert.Equal("2 all-reduces of 4096 B; 1 reduce-scatter of 8 B", log.Summarize(CommunicationPhase.Forward).ToString());
        Assert.Equal("none", log.Summarize(CommunicationPhase.GradientSync).ToString());
    }

    /// <summary><paramref name="perDirection"/> all-reduces each way, or as many all-gather/reduce-scatter pairs with
    /// sequence parallelism, each of <paramref name="activationBytes"/>; nothing at TP = 1.</summary>
    internal static void AssertPerDirection(IEnumerable<(CommunicationSummary Forward, CommunicationSummary Backward)> runs, int tp, bool sp,
        int perDirection, long activationBytes)
    {
        foreach (var (forward, backward) in runs)
        {
            foreach (var summary in new[] { forward, backward })
            {
                if (tp == 1)
                {
                    Assert.Equal(0, summary.TotalCount);
                    continue;
                }
                var expected = new CollectiveTally(perDirection, perDirection * activationBytes);
                if (sp)
                {
                    Assert.Equal(expected, summary[CollectiveKind.AllGather]);
                    Assert.Equal(expected, summary[CollectiveKind.ReduceScatter]);
                    Assert.Equal(2 * perDirection, summary.TotalCount);
                }
                else
                {
                    Assert.Equal(expected, summary[CollectiveKind.AllReduce]);
                    Assert.Equal(perDirection, summary.TotalCount);
                }
            }
        }
    }
}
