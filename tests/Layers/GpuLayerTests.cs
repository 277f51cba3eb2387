using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Runtime.Cuda;

namespace ModelParallel.Tests.Layers;

/// <summary>
/// The layers on the CUDA backend (bfloat16 activations and weights, float32 gradients and statistics) at TP 1, 2
/// and 4, one GPU per rank, against the float64 single-rank CPU reference within 1e-2; skipped without enough GPUs.
/// </summary>
[Trait("Category", "Gpu")]
public class GpuLayerTests
{
    private const double Tol = 1e-2;

    // The CUDA attention kernels take head dimensions of 64 and 128, so these layers are wider than the CPU tests'.

    /// <summary>SwiGLU, RMSNorm, grouped-query attention with 2 key/value heads (replicated at TP 4), no biases.</summary>
    private static readonly TransformerConfig Llama = new(512, AttentionHeads: 8, QueryGroups: 2, FfnHiddenSize: 1024);

    /// <summary>GeLU, LayerNorm, multi-head attention, biases.</summary>
    private static readonly TransformerConfig Gpt2 = new(256, AttentionHeads: 4, QueryGroups: 4, FfnHiddenSize: 512,
        MlpActivation.Gelu, NormKind.LayerNorm, AddBiasLinear: true);

    private static readonly TokenShape Shape = new(6, 2);

    public static TheoryData<int, bool> Cases => new() { { 1, false }, { 1, true }, { 2, false }, { 2, true }, { 4, false }, { 4, true } };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ColumnParallelLinearMatchesCpuReference(int tp, bool sp)
    {
        var world = Gpus(tp);
        ColumnParallelLinearTests.AssertMatchesReference(world, tp, bias: true, gatherOutput: !sp, sp, LinearActivation.None, Tol);
        ColumnParallelLinearTests.AssertMatchesReference(world, tp, bias: true, gatherOutput: false, sp, LinearActivation.Gelu, Tol);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RowParallelLinearMatchesCpuReference(int tp, bool sp)
    {
        var world = Gpus(tp);
        RowParallelLinearTests.AssertMatchesReference(world, tp, bias: true, inputIsParallel: true, sp, Tol);
        RowParallelLinearTests.AssertMatchesReference(world, tp, bias: false, inputIsParallel: sp, sp, Tol);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MlpMatchesCpuReferenceWithOneCollectivePerDirection(int tp, bool sp)
    {
        var world = Gpus(tp);
        foreach (var (activation, bias) in new[] { (MlpActivation.Gelu, true), (MlpActivation.SwiGlu, false) })
        {
            var runs = LayerHarness.AssertMatchesReference(world, tp, sp, ParallelMlpTests.Build(activation, bias),
                ParallelMlpTests.Shape, ParallelMlpTests.Hidden, Tol);
            CommunicationCountTests.AssertPerDirection(runs.Select(r => (r.Forward, r.Backward)), tp, sp, 1,
                ActivationBytes(ParallelMlpTests.Shape, ParallelMlpTests.Hidden));
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void AttentionMatchesCpuReferenceWithOneCollectivePerDirection(int tp, bool sp)
    {
        var world = Gpus(tp);
        foreach (var config in new[] { Llama, Gpt2 })
        {
            var runs = LayerHarness.AssertMatchesReference(world, tp, sp,
                ParallelAttentionTests.Build(config.HiddenSize, config.AttentionHeads, config.QueryGroups, config.AddBiasLinear),
                Shape, config.HiddenSize, Tol);
            CommunicationCountTests.AssertPerDirection(runs.Select(r => (r.Forward, r.Backward)), tp, sp, 1,
                ActivationBytes(Shape, config.HiddenSize));
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TransformerLayerMatchesCpuReferenceWithTwoCollectivesPerDirection(int tp, bool sp)
    {
        var world = Gpus(tp);
        foreach (var config in new[] { Llama, Gpt2 })
        {
            var runs = LayerHarness.AssertMatchesReference(world, tp, sp, TransformerLayerTests.Build(config), Shape, config.HiddenSize, Tol);
            CommunicationCountTests.AssertPerDirection(runs.Select(r => (r.Forward, r.Backward)), tp, sp, 2,
                ActivationBytes(Shape, config.HiddenSize));
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GptModelMatchesCpuReference(int tp, bool sp)
    {
        var world = Gpus(tp);
        GptModelTests.AssertMatchesReference(world, tp, sp, new GptConfig(96, 2, Llama), Tol);
        if (tp > 1)
        {
            GptModelTests.AssertMatchesReference(world, tp, sp, new GptConfig(97, 2, Gpt2), Tol);
        }
    }

    /// <summary>A [tokens, hidden] bfloat16 activation.</summary>
    private static long ActivationBytes(TokenShape shape, int hidden) => (long)shape.Tokens * hidden * DType.BFloat16.Size();

    /// <summary>A CUDA world of <paramref name="gpus"/> ranks; skips the test when fewer GPUs can be used.</summary>
    private static TestWorld Gpus(int gpus)
    {
        if (!CudaBackend.TryGetDeviceCount(out int count, out string reason))
        {
            Assert.Skip($"no GPU can be used: {reason}");
        }
        if (count < gpus)
        {
            Assert.Skip($"needs {gpus} GPUs, {count} present");
        }
        return new TestWorld(DType.BFloat16, (ranks, body) => CudaWorld.Run(ranks, body));
    }
}
