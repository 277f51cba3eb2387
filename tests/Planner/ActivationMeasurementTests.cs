using ModelParallel.Layers;
using ModelParallel.Planner;
using ModelParallel.Runtime;
using ModelParallel.Tests.Layers;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Planner;

/// <summary>
/// The planner's activation bytes per layer against this library's own <see cref="TransformerLayer"/> on the CPU
/// backend, whose allocator counts every byte it hands out. Each rank builds the layer, uploads a random input,
/// resets the allocator's peak and runs forward; what forward allocates (peak minus the bytes in use before) is
/// what the layer keeps for backward, since every buffer it allocates lives in a slot the layer owns.
///
/// The planner counts the tensors Megatron keeps (Korthikanti et al. 2022), in fp32 here (4-byte elements, fp32
/// statistics). The layer keeps every one of them, matched term by term: its output is the next layer's "norm1
/// input", its norm outputs are the "QKV input" and "MLP input", the residual sum is the "norm2 input", q, k, v,
/// the attention output and log-sum-exp, fc1's outputs and the SwiGLU product (or GeLU's input and output) are
/// themselves. It also keeps buffers Megatron does not, which <see cref="LibraryExtras"/> lists: the measured
/// bytes must equal the planner's plus exactly those.
/// </summary>
public sealed class ActivationMeasurementTests
{
    private const int Sequence = 32;
    private const int Batch = 2;

    /// <summary>SwiGLU, RMSNorm, grouped-query attention (8 heads, 4 kv heads), no biases.</summary>
    private static readonly TransformerConfig Llama = new(64, AttentionHeads: 8, QueryGroups: 4, FfnHiddenSize: 160);

    /// <summary>GeLU, LayerNorm, multi-head attention, biases.</summary>
    private static readonly TransformerConfig Gpt = new(64, AttentionHeads: 4, QueryGroups: 4, FfnHiddenSize: 256,
        MlpActivation.Gelu, NormKind.LayerNorm, AddBiasLinear: true);

    public static TheoryData<int, bool, string> Cases
    {
        get
        {
            var data = new TheoryData<int, bool, string>();
            foreach (var tp in new[] { 1, 2, 4 })
            {
                foreach (var sp in tp == 1 ? [false] : new[] { false, true })
                {
                    data.Add(tp, sp, nameof(Llama));
                    data.Add(tp, sp, nameof(Gpt));
                }
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardKeepsThePlannersTermsPlusTheLayersOwnBuffers(int tp, bool sp, string name)
    {
        var config = name == nameof(Llama) ? Llama : Gpt;
        var shape = new TokenShape(Sequence, Batch);
        var rng = TestRandom.Create();
        var rows = sp ? shape.Tokens / tp : shape.Tokens;
        var inputs = Enumerable.Range(0, tp).Select(_ => Numerics.RandomArray(rng, rows * config.HiddenSize)).ToArray();

        var measured = TestWorld.Cpu(DType.Float32).Collect(tp, ctx =>
        {
            var context = new ParallelContext(ctx.Backend, ctx.World, sp);
            using var layer = new TransformerLayer(context, "layer", config);
            using var x = TestTensors.Upload(ctx.Backend, inputs[ctx.Rank]);
            ctx.Backend.ResetPeak();
            var before = ctx.Backend.AllocatorStats.BytesInUse;
            var y = layer.Forward(x, shape);
            Assert.DoesNotContain(TestTensors.Download(y), v => !double.IsFinite(v));
            return ctx.Backend.AllocatorStats.PeakBytesInUse - before;
        });

        var training = new TrainingSpec { GlobalBatch = 1, Precision = Precision.Fp32, SequenceParallel = sp };
        var planner = ActivationMemory.Layer(Model(config), training, tp, Batch);
        var extras = LibraryExtras(config, tp, sp, shape.Tokens);
        var output = TestContext.Current.TestOutputHelper;
        foreach (var term in planner)
        {
            output?.WriteLine($"planner  {term.Name,-42} {term.Value,10:F0} B  {term.Formula}");
        }
        foreach (var (what, bytes) in extras)
        {
            output?.WriteLine($"layer    {what,-42} {bytes,10:F0} B");
        }
        var expected = planner.Sum(t => t.Value) + extras.Sum(e => e.Bytes);
        output?.WriteLine($"planner {planner.Sum(t => t.Value):F0} B, measured {measured[0]} B per rank: planner / measured = {planner.Sum(t => t.Value) / measured[0]:F3}");
        Assert.All(measured, bytes => Assert.Equal(expected, bytes));
    }

    /// <summary>
    /// Bytes the layer keeps that Megatron's accounting does not, with why:
    /// <list type="bullet">
    /// <item>the norm kernel keeps two fp32 statistics per row (mean and rstd) for RMSNorm too, which needs only rstd;</item>
    /// <item>linear_qkv's fused output, copied into separate q, k and v (Megatron's q, k and v are views of it);</item>
    /// <item>the row-parallel outputs of linear_proj and linear_fc2 before the residual add (Megatron frees them);</item>
    /// <item>with sequence parallelism, their reduce-scattered shards, and the all-gathered inputs of linear_qkv and
    /// linear_fc1, kept for the weight gradients where Megatron keeps the shard and gathers again in backward.</item>
    /// </list>
    /// </summary>
    private static List<(string What, double Bytes)> LibraryExtras(TransformerConfig c, int tp, bool sp, int tokens)
    {
        const int e = 4;
        var rows = sp ? tokens / tp : tokens;
        var kv = c.QueryGroups * (c.HiddenSize / c.AttentionHeads);
        var extras = new List<(string, double)>
        {
            ("fused QKV output", (double)e * tokens * (c.HiddenSize + 2 * kv) / tp),
            ("linear_proj and linear_fc2 outputs", 2.0 * e * tokens * c.HiddenSize),
        };
        if (c.Normalization == NormKind.RmsNorm)
        {
            extras.Add(("unused mean of the two RMSNorms", 2.0 * e * rows));
        }
        if (sp && tp > 1)
        {
            extras.Add(("reduce-scattered shards of those outputs", 2.0 * e * rows * c.HiddenSize));
            extras.Add(("gathered inputs of linear_qkv and linear_fc1", 2.0 * e * tokens * c.HiddenSize));
        }
        return extras;
    }

    private static ModelSpec Model(TransformerConfig c) => new()
    {
        Name = "measured", Layers = 1, Hidden = c.HiddenSize, Heads = c.AttentionHeads, KvHeads = c.QueryGroups,
        Ffn = c.FfnHiddenSize, Activation = c.Activation == MlpActivation.SwiGlu ? FfnActivation.SwiGlu : FfnActivation.Gelu,
        Vocab = 1000, SequenceLength = Sequence,
        Norm = c.Normalization == NormKind.LayerNorm ? Normalization.LayerNorm : Normalization.RmsNorm,
        LinearBiases = c.AddBiasLinear,
    };
}
