using ModelParallel.Interop;
using ModelParallel.Runtime;

namespace ModelParallel.Tests.Gpu;

/// <summary>Every <see cref="IKernels"/> method of the CUDA backend against the float64 CPU backend on the same
/// (BFloat16-rounded) inputs, at several shapes including odd sizes.</summary>
[Trait("Category", GpuRequirement.Category)]
[Collection(GpuCollection.Name)]
public class CudaKernelsTests
{
    private const DType Bf16 = DType.BFloat16;
    private const DType F32 = DType.Float32;

    [Theory]
    [InlineData(1)]
    [InlineData(1000)]
    [InlineData(4097)]
    public void GeluForwardAndBackward(int count)
    {
        using var t = new GpuTwin();
        var x = t.Random(count, Bf16, 3);
        var dy = t.Random(count, Bf16);
        var y = t.Poisoned(count, Bf16);
        var dx = t.Poisoned(count, Bf16);
        t.Run((k, s) => k.GeluForward(y.On(s), x.On(s)));
        t.Run((k, s) => k.GeluBackward(dx.On(s), dy.On(s), x.On(s)));
        t.AssertClose(y, "gelu forward");
        t.AssertClose(dx, "gelu backward");
    }

    [Theory]
    [InlineData(3, 5)]
    [InlineData(64, 257)]
    public void SwigluForwardAndBackward(int rows, int cols)
    {
        using var t = new GpuTwin();
        var gateUp = t.Random(2L * rows * cols, Bf16, 3);
        var dy = t.Random((long)rows * cols, Bf16);
        var y = t.Poisoned((long)rows * cols, Bf16);
        var dGateUp = t.Poisoned(2L * rows * cols, Bf16);
        t.Run((k, s) => k.SwigluForward(y.On(s), gateUp.On(s), rows, cols));
        t.Run((k, s) => k.SwigluBackward(dGateUp.On(s), dy.On(s), gateUp.On(s), rows, cols));
        t.AssertClose(y, "swiglu forward");
        t.AssertClose(dGateUp, "swiglu backward");
    }

    [Theory]
    [InlineData(NormKind.RmsNorm, 5, 67, false, false)]
    [InlineData(NormKind.RmsNorm, 32, 1024, true, false)]
    [InlineData(NormKind.LayerNorm, 5, 67, false, true)]
    [InlineData(NormKind.LayerNorm, 32, 1024, true, true)]
    [InlineData(NormKind.LayerNorm, 7, 129, true, false)]
    [InlineData(NormKind.RmsNorm, 3, 8192, true, false)]
    [InlineData(NormKind.LayerNorm, 3, 4100, true, true)]
    [InlineData(NormKind.RmsNorm, 2, 40000, true, false)]
    public void NormForwardAndBackward(NormKind kind, int rows, int cols, bool withResidual, bool withBias)
    {
        using var t = new GpuTwin();
        long count = (long)rows * cols;
        var x = t.Random(count, Bf16, 2);
        var residual = withResidual ? t.Random(count, Bf16, 2) : null;
        var weight = t.Uniform(cols, Bf16, 0.5, 1.5);
        var bias = withBias ? t.Random(cols, Bf16) : null;
        var y = t.Poisoned(count, Bf16);
        var sum = withResidual ? t.Poisoned(count, Bf16) : null;
        var stats = t.Poisoned(2L * rows, F32);
        const float eps = 1e-5f;
        t.Run((k, s) => k.NormForward(kind, y.On(s), sum?.On(s), stats.On(s), x.On(s), residual?.On(s), weight.On(s),
            bias?.On(s), rows, cols, eps));
        t.AssertClose(y, $"{kind} forward y");
        if (sum is not null)
        {
            t.AssertClose(sum, $"{kind} forward sum");
        }
        double[] gpuStats = t.DownloadGpu(stats), cpuStats = t.DownloadCpu(stats);
        Support.Numerics.AssertClose(gpuStats[rows..], cpuStats[rows..], GpuTwin.Tolerance(Bf16), $"{kind} rstd");
        if (kind == NormKind.LayerNorm)
        {
            Support.Numerics.AssertClose(gpuStats[..rows], cpuStats[..rows], GpuTwin.Tolerance(Bf16), "LayerNorm mean");
        }

        var normalised = sum ?? x;
        var dy = t.Random(count, Bf16);
        var dResidual = withResidual ? t.Random(count, Bf16) : null;
        var dx = t.Poisoned(count, Bf16);
        var dWeight = t.Random(cols, F32);
        var dBias = kind == NormKind.LayerNorm ? t.Random(cols, F32) : null;
        t.Run((k, s) => k.NormBackward(kind, dx.On(s), dWeight.On(s), dBias?.On(s), dy.On(s), dResidual?.On(s),
            normalised.On(s), weight.On(s), stats.On(s), rows, cols));
        t.AssertClose(dx, $"{kind} backward dx", GpuTwin.Tolerance(Bf16));
        t.AssertClose(dWeight, $"{kind} backward dWeight (accumulated)", GpuTwin.Tolerance(Bf16));
        if (dBias is not null)
        {
            t.AssertClose(dBias, $"{kind} backward dBias (accumulated)", GpuTwin.Tolerance(Bf16));
        }
    }

    [Theory]
    [InlineData(7, 2, 3, 64, 0)]
    [InlineData(13, 1, 4, 128, 5)]
    public void RopeForwardAndBackward(int seq, int batch, int heads, int headDim, int offset)
    {
        using var t = new GpuTwin();
        long count = (long)seq * batch * heads * headDim;
        var x = t.Random(count, Bf16);
        var g = t.Random(count, Bf16);
        t.Run((k, s) => k.Rope(x.On(s), seq, batch, heads, headDim, new RotaryEmbedding(10000), offset, backward: false));
        t.Run((k, s) => k.Rope(g.On(s), seq, batch, heads, headDim, new RotaryEmbedding(10000), offset, backward: true));
        t.AssertClose(x, "rope forward (in place)");
        t.AssertClose(g, "rope backward (in place)");
    }

    /// <summary>Llama 3.1's frequencies (theta 500000, factor 8, low 1, high 4, original 8192): with head_dim 128 the
    /// pairs fall in all three bands; positions past the original context and odd sizes (the unvectorised path).</summary>
    [Theory]
    [InlineData(F32, 7, 2, 3, 128, 8000)]
    [InlineData(Bf16, 7, 2, 3, 128, 8000)]
    [InlineData(F32, 13, 1, 4, 128, 131000)]
    [InlineData(Bf16, 5, 3, 1, 64, 0)]
    [InlineData(F32, 3, 1, 5, 6, 20000)]
    public void RopeLlama3ForwardAndBackward(DType dtype, int seq, int batch, int heads, int headDim, int offset)
    {
        using var t = new GpuTwin();
        var rotary = new RotaryEmbedding(500000, new Llama3RopeScaling(8, 1, 4, 8192));
        long count = (long)seq * batch * heads * headDim;
        var x = t.Random(count, dtype);
        var g = t.Random(count, dtype);
        t.Run((k, s) => k.Rope(x.On(s), seq, batch, heads, headDim, rotary, offset, backward: false));
        t.Run((k, s) => k.Rope(g.On(s), seq, batch, heads, headDim, rotary, offset, backward: true));
        t.AssertClose(x, $"llama3 rope forward ({dtype})");
        t.AssertClose(g, $"llama3 rope backward ({dtype})");
    }

    [Theory]
    [InlineData(37, 65, 100, 50)]
    [InlineData(256, 128, 0, 1000)]
    public void EmbeddingForwardAndBackward(int tokens, int hidden, int vocabStart, int vocabRows)
    {
        using var t = new GpuTwin();
        // Some ids fall outside this shard [vocabStart, vocabStart + vocabRows), and some repeat.
        int[] idValues = [.. Enumerable.Range(0, tokens).Select(_ => t.Rng.Next(Math.Max(0, vocabStart - 10), vocabStart + vocabRows + 10))];
        var ids = t.Ints(idValues);
        var table = t.Random((long)vocabRows * hidden, Bf16);
        var output = t.Poisoned((long)tokens * hidden, Bf16);
        t.Run((k, s) => k.EmbeddingForward(output.On(s), ids.On(s), table.On(s), tokens, hidden, vocabStart, vocabRows));
        t.AssertClose(output, "embedding forward");

        var dOut = t.Random((long)tokens * hidden, Bf16);
        var dTable = t.Random((long)vocabRows * hidden, F32);
        t.Run((k, s) => k.EmbeddingBackward(dTable.On(s), dOut.On(s), ids.On(s), tokens, hidden, vocabStart, vocabRows));
        t.AssertClose(dTable, "embedding backward (accumulated)", GpuTwin.Tolerance(Bf16));
    }

    [Theory]
    [InlineData(9, 1001, 500)]
    [InlineData(64, 4096, 0)]
    public void CrossEntropyPieces(int rows, int cols, int vocabStart)
    {
        using var t = new GpuTwin();
        var logits = t.Random((long)rows * cols, Bf16, 4);
        int[] targetValues = [.. Enumerable.Range(0, rows).Select(_ => t.Rng.Next(Math.Max(0, vocabStart - 50), vocabStart + cols + 50))];
        var targets = t.Ints(targetValues);
        var rowMax = t.Poisoned(rows, F32);
        var sumExp = t.Poisoned(rows, F32);
        var targetLogit = t.Poisoned(rows, F32);
        var loss = t.Poisoned(rows, F32);
        var dLogits = t.Poisoned((long)rows * cols, Bf16);
        t.Run((k, s) => k.CrossEntropyRowMax(rowMax.On(s), logits.On(s), rows, cols));
        t.Run((k, s) => k.CrossEntropySumExp(sumExp.On(s), targetLogit.On(s), logits.On(s), rowMax.On(s), targets.On(s),
            rows, cols, vocabStart));
        t.Run((k, s) => k.CrossEntropyLoss(loss.On(s), rowMax.On(s), sumExp.On(s), targetLogit.On(s), rows));
        t.Run((k, s) => k.CrossEntropyBackward(dLogits.On(s), logits.On(s), rowMax.On(s), sumExp.On(s), targets.On(s),
            rows, cols, vocabStart, 1f / rows));
        double tolerance = GpuTwin.Tolerance(Bf16);
        t.AssertClose(rowMax, "cross-entropy row max", tolerance);
        t.AssertClose(sumExp, "cross-entropy sum of exponentials", tolerance);
        t.AssertClose(targetLogit, "cross-entropy target logit", tolerance);
        t.AssertClose(loss, "cross-entropy loss", tolerance);
        t.AssertClose(dLogits, "cross-entropy backward", tolerance);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(1000, true)]
    [InlineData(4099, true)]
    public void AdamWStep(int count, bool withModel)
    {
        using var t = new GpuTwin();
        var master = t.Random(count, F32);
        var grad = t.Random(count, F32);
        var m = t.Random(count, F32, 0.1);
        var v = t.Uniform(count, F32, 0.001, 0.1);
        var model = withModel ? t.Poisoned(count, Bf16) : null;
        t.Run((k, s) => k.AdamW(master.On(s), model?.On(s), grad.On(s), m.On(s), v.On(s), 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 3));
        t.AssertClose(master, "AdamW master");
        t.AssertClose(m, "AdamW first moment");
        t.AssertClose(v, "AdamW second moment");
        if (model is not null)
        {
            t.AssertClose(model, "AdamW model copy");
        }
    }

    [Theory]
    [InlineData(3, 1)]
    [InlineData(17, 333)]
    public void ElementwiseAddAxpyBias(int rows, int cols)
    {
        using var t = new GpuTwin();
        long count = (long)rows * cols;
        var a = t.Random(count, Bf16);
        var b = t.Random(count, Bf16);
        var y = t.Poisoned(count, Bf16);
        t.Run((k, s) => k.Add(y.On(s), a.On(s), b.On(s)));
        t.AssertClose(y, "add");

        var accumulator = t.Random(count, F32);
        t.Run((k, s) => k.Axpy(accumulator.On(s), -0.75f, a.On(s)));
        t.AssertClose(accumulator, "axpy of BFloat16 into Float32", GpuTwin.Tolerance(F32));

        var bias = t.Random(cols, Bf16);
        t.Run((k, s) => k.AddBias(b.On(s), bias.On(s), rows, cols));
        t.AssertClose(b, "add bias (in place)");

        var dBias = t.Random(cols, F32);
        t.Run((k, s) => k.BiasGrad(dBias.On(s), a.On(s), rows, cols));
        t.AssertClose(dBias, "bias gradient (accumulated)", GpuTwin.Tolerance(Bf16));
    }

    [Fact]
    public void FillConvertAndCopy2D()
    {
        using var t = new GpuTwin();
        var filled = t.Poisoned(1001, Bf16);
        t.Run((k, s) => k.Fill(filled.On(s), 0.3125));
        t.AssertClose(filled, "fill", 0);
        var zeroed = t.Poisoned(77, F32);
        t.Run((k, s) => k.Fill(zeroed.On(s), 0));
        Assert.All(t.DownloadGpu(zeroed), v => Assert.Equal(0, v));

        var ints = t.Ints([.. Enumerable.Range(0, 45).Select(_ => t.Rng.Next(1, 1000))]);
        t.Run((k, s) => k.Fill(ints.On(s), -7));
        var downloaded = new int[45];
        t.Gpu.Download(ints.Gpu, downloaded);
        Assert.All(downloaded, v => Assert.Equal(-7, v));

        var source = t.Random(999, F32);
        var narrowed = t.Poisoned(999, Bf16);
        t.Run((k, s) => k.Convert(narrowed.On(s), source.On(s)));
        t.AssertClose(narrowed, "convert Float32 to BFloat16");
        var widened = t.Poisoned(999, F32);
        t.Run((k, s) => k.Convert(widened.On(s), narrowed.On(s)));
        Support.Numerics.AssertClose(t.DownloadGpu(widened), t.DownloadGpu(narrowed), 0, "convert BFloat16 to Float32 is exact");

        const int rows = 5, cols = 7, srcStride = 11, dstStride = 9;
        var block = t.Random(rows * srcStride, Bf16);
        var target = t.Random(rows * dstStride + 3, Bf16);
        t.Run((k, s) => k.Copy2D(target.On(s).Slice(3, rows * dstStride), dstStride, block.On(s).Slice(2, rows * srcStride - 2),
            srcStride, rows, cols));
        t.AssertClose(target, "copy 2D between strided views", 0);
    }

    [Theory]
    [InlineData(2, 37, 4, 2, 64, true)]
    [InlineData(2, 37, 4, 2, 64, false)]
    [InlineData(1, 130, 2, 2, 128, true)]
    [InlineData(3, 16, 8, 1, 128, false)]
    [InlineData(2, 300, 4, 2, 128, false)]
    public void AttentionForwardAndBackward(int batch, int seq, int heads, int kvHeads, int headDim, bool causal)
    {
        using var t = new GpuTwin();
        var shape = new AttentionShape(batch, seq, heads, kvHeads, headDim, causal);
        long qCount = (long)seq * batch * heads * headDim;
        long kvCount = (long)seq * batch * kvHeads * headDim;
        var q = t.Random(qCount, Bf16);
        var k = t.Random(kvCount, Bf16);
        var v = t.Random(kvCount, Bf16);
        var o = t.Poisoned(qCount, Bf16);
        var lse = t.Poisoned((long)batch * heads * seq, F32);
        t.Run((kernels, s) => kernels.AttentionForward(o.On(s), lse.On(s), q.On(s), k.On(s), v.On(s), shape));
        t.AssertClose(o, $"attention forward {shape}");
        t.AssertClose(lse, $"attention log-sum-exp {shape}", GpuTwin.Tolerance(Bf16));

        var dO = t.Random(qCount, Bf16);
        var dq = t.Poisoned(qCount, Bf16);
        var dk = t.Poisoned(kvCount, Bf16);
        var dv = t.Poisoned(kvCount, Bf16);
        t.Run((kernels, s) => kernels.AttentionBackward(dq.On(s), dk.On(s), dv.On(s), dO.On(s), q.On(s), k.On(s), v.On(s),
            o.On(s), lse.On(s), shape));
        t.AssertClose(dq, $"attention dq {shape}");
        t.AssertClose(dk, $"attention dk {shape}");
        t.AssertClose(dv, $"attention dv {shape}");

        // Again, into fresh poisoned outputs: the workspace now holds the first call's accumulators, which the
        // backward must clear rather than add to.
        var dq2 = t.Poisoned(qCount, Bf16);
        var dk2 = t.Poisoned(kvCount, Bf16);
        var dv2 = t.Poisoned(kvCount, Bf16);
        t.Run((kernels, s) => kernels.AttentionBackward(dq2.On(s), dk2.On(s), dv2.On(s), dO.On(s), q.On(s), k.On(s),
            v.On(s), o.On(s), lse.On(s), shape));
        t.AssertClose(dq2, $"attention dq {shape}, second call");
        t.AssertClose(dk2, $"attention dk {shape}, second call");
        t.AssertClose(dv2, $"attention dv {shape}, second call");
    }

    /// <summary>Sequences of thousands of tokens, not multiples of the tile (kept apart so that the sanitizers can run
    /// the short cases alone).</summary>
    [Theory]
    [InlineData(1, 2000, 4, 2, 128, true)]
    [InlineData(1, 4100, 2, 1, 64, true)]
    [InlineData(1, 1500, 2, 2, 128, false)]
    public void AttentionAtLongSequences(int batch, int seq, int heads, int kvHeads, int headDim, bool causal) =>
        AttentionForwardAndBackward(batch, seq, heads, kvHeads, headDim, causal);

    /// <summary>A row whose float32 copy fits the device's shared memory only without the kernel's static shared
    /// memory is refused as unsupported, naming both, rather than failing at launch.</summary>
    [Fact]
    public unsafe void NormRowBeyondSharedMemoryIsUnsupported()
    {
        using var t = new GpuTwin();
        int limit = 0;
        Status.CheckCuda(CudaRuntime.DeviceGetAttribute(&limit, CudaRuntime.AttrMaxSharedMemoryPerBlockOptin, 0),
            "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
        int cols = limit / sizeof(float) - 4;  // dynamic bytes fit; dynamic + static do not
        var x = t.Random(cols, Bf16);
        var weight = t.Random(cols, Bf16);
        var y = t.Poisoned(cols, Bf16);
        var stats = t.Poisoned(2, F32);
        var e = Assert.Throws<NativeKernelException>(() => t.Gpu.Kernels.NormForward(NormKind.RmsNorm, y.Gpu, null,
            stats.Gpu, x.Gpu, null, weight.Gpu, null, 1, cols, 1e-5f));
        Assert.Equal("MP_ERR_UNSUPPORTED", e.Name);
        Assert.Contains("static", e.LibraryMessage);
    }

    [Fact]
    public void BadArgumentsAreNamed()
    {
        using var t = new GpuTwin();
        var x = t.Random(10, Bf16);
        var wrongCount = t.Poisoned(9, Bf16);
        var wrongType = t.Poisoned(10, F32);
        var e = Assert.Throws<ArgumentException>(() => t.Gpu.Kernels.GeluForward(wrongCount.Gpu, x.Gpu));
        Assert.Contains("y has 9 elements", e.Message);
        e = Assert.Throws<ArgumentException>(() => t.Gpu.Kernels.GeluForward(wrongType.Gpu, x.Gpu));
        Assert.Contains("y has dtype Float32", e.Message);
        e = Assert.Throws<ArgumentException>(() => t.Gpu.Kernels.GeluForward(x.Cpu, x.Gpu));
        Assert.Contains("not of cuda:0", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Gpu.Kernels.AddBias(x.Gpu, x.Gpu, 0, 10));
        var c = t.Poisoned(4, F32);
        e = Assert.Throws<ArgumentException>(() => t.Gpu.Kernels.Gemm(c.Gpu, x.Gpu, x.Gpu, 2, 2, 5, false, false,
            epilogue: GemmEpilogue.Bias));
        Assert.Contains("needs bias", e.Message);
    }
}
