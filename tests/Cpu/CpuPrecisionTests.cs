using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>The float32 backend agrees with the float64 backend on a chain of kernels fed the same inputs.</summary>
public sealed class CpuPrecisionTests
{
    /// <summary>Norm, QKV projection with bias, RoPE, causal GQA attention and its backward, an MLP with fused
    /// GeLU and its DGeLU backward: every output of the chain, downloaded in order.</summary>
    private static List<double[]> RunChain(DType dtype, Dictionary<string, double[]> inputs, int tokens, int hidden,
        AttentionShape shape)
    {
        using var backend = new CpuBackend(dtype);
        var k = backend.Kernels;
        Tensor Up(string name) => TestTensors.Upload(backend, inputs[name]);
        var outputs = new List<double[]>();
        int qCount = tokens * shape.Heads * shape.HeadDim, kvCount = tokens * shape.KvHeads * shape.HeadDim;

        var normed = backend.Allocate(dtype, tokens * hidden);
        var sum = backend.Allocate(dtype, tokens * hidden);
        k.NormForward(NormKind.RmsNorm, normed, sum, backend.Allocate(dtype, 2 * tokens), Up("x"), Up("residual"),
            Up("normWeight"), null, tokens, hidden, 1e-5f);
        outputs.Add(TestTensors.Download(normed));

        int qkvCols = qCount / tokens + 2 * kvCount / tokens;
        var qkv = backend.Allocate(dtype, tokens * qkvCols);
        k.Gemm(qkv, normed, Up("wQkv"), tokens, qkvCols, hidden, false, true, epilogue: GemmEpilogue.Bias, bias: Up("bQkv"));
        var q = backend.Allocate(dtype, qCount);
        var kk = backend.Allocate(dtype, kvCount);
        var v = backend.Allocate(dtype, kvCount);
        int qCols = qCount / tokens, kvCols = kvCount / tokens;
        k.Copy2D(q, qCols, qkv, qkvCols, tokens, qCols);
        k.Copy2D(kk, kvCols, qkv.Slice(qCols, qkv.Count - qCols), qkvCols, tokens, kvCols);
        k.Copy2D(v, kvCols, qkv.Slice(qCols + kvCols, qkv.Count - qCols - kvCols), qkvCols, tokens, kvCols);
        k.Rope(q, shape.SeqLen, shape.Batch, shape.Heads, shape.HeadDim, new RotaryEmbedding(10000), 0, false);
        k.Rope(kk, shape.SeqLen, shape.Batch, shape.KvHeads, shape.HeadDim, new RotaryEmbedding(10000), 0, false);
        var o = backend.Allocate(dtype, qCount);
        var lse = backend.Allocate(dtype, shape.Batch * shape.Heads * shape.SeqLen);
        k.AttentionForward(o, lse, q, kk, v, shape);
        outputs.Add(TestTensors.Download(o));
        var dq = backend.Allocate(dtype, qCount);
        var dk = backend.Allocate(dtype, kvCount);
        var dv = backend.Allocate(dtype, kvCount);
        k.AttentionBackward(dq, dk, dv, Up("dO"), q, kk, v, o, lse, shape);
        outputs.Add(TestTensors.Download(dq));
        outputs.Add(TestTensors.Download(dk));
        outputs.Add(TestTensors.Download(dv));

        int ffn = 3 * hidden;
        var preAct = backend.Allocate(dtype, tokens * ffn);
        var act = backend.Allocate(dtype, tokens * ffn);
        k.Gemm(act, normed, Up("wUp"), tokens, ffn, hidden, false, true, epilogue: GemmEpilogue.BiasGelu, bias: Up("bUp"),
            aux: preAct);
        outputs.Add(TestTensors.Download(act));
        var dAct = backend.Allocate(dtype, tokens * ffn);
        var dBias = backend.Allocate(dtype, ffn);
        k.Gemm(dAct, Up("dMlp"), Up("wDown"), tokens, ffn, hidden, false, false, epilogue: GemmEpilogue.DGelu, aux: preAct,
            biasGrad: dBias);
        outputs.Add(TestTensors.Download(dAct));
        outputs.Add(TestTensors.Download(dBias));
        return outputs;
    }

    [Fact]
    public void Float32Backend_AgreesWithFloat64Backend()
    {
        var rng = TestRandom.Create();
        var shape = new AttentionShape(Batch: 2, SeqLen: 6, Heads: 4, KvHeads: 2, HeadDim: 8, Causal: true);
        int tokens = shape.SeqLen * shape.Batch, hidden = 24, ffn = 3 * hidden;
        int qkvCols = (shape.Heads + 2 * shape.KvHeads) * shape.HeadDim;
        double[] Values(int count, double scale = 1) => CpuTestKit.Random(rng, DType.Float32, count, scale);
        var inputs = new Dictionary<string, double[]>
        {
            ["x"] = Values(tokens * hidden),
            ["residual"] = Values(tokens * hidden),
            ["normWeight"] = Values(hidden),
            ["wQkv"] = Values(qkvCols * hidden, 0.3),
            ["bQkv"] = Values(qkvCols),
            ["dO"] = Values(tokens * shape.Heads * shape.HeadDim),
            ["wUp"] = Values(ffn * hidden, 0.3),
            ["bUp"] = Values(ffn),
            ["dMlp"] = Values(tokens * hidden),
            ["wDown"] = Values(hidden * ffn, 0.3),
        };
        var single = RunChain(DType.Float32, inputs, tokens, hidden, shape);
        var reference = RunChain(DType.Float64, inputs, tokens, hidden, shape);
        string[] names = ["norm", "attention O", "dQ", "dK", "dV", "MLP activation", "dGeLU", "bias gradient"];
        for (int i = 0; i < names.Length; i++)
        {
            Numerics.AssertClose(single[i], reference[i], 1e-5, $"float32 vs float64 {names[i]}");
        }
    }
}
