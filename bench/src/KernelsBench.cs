using System.Globalization;
using System.Text;
using ModelParallel.Runtime;
using ModelParallel.Runtime.Cuda;

namespace ModelParallel.Bench;

/// <summary>
/// <c>mpbench kernels [--quick] [--json PATH]</c>: our GEMM epilogues, attention, norms and pointwise
/// kernels on one GPU, named so that bench/compare.py pairs each row with its PyTorch peer
/// (bench/peers/torch_kernels.py).
/// </summary>
public static class KernelsBench
{
    private const long L2Bytes = 60L << 20;

    public static int Run(Options o)
    {
        bool quick = o.Flag("quick");
        string? json = o.String("json");
        o.RejectUnknown();
        using IBackend b = Backends.Create(BackendKind.Cuda);
        var rows = new List<string>();
        void Add(string name, string? peer, double ms, double flops = 0, double bytes = 0, string extra = "")
        {
            var sb = new StringBuilder().Append(CultureInfo.InvariantCulture, $"{{\"name\": \"{name}\", \"ms\": {ms:R}");
            if (peer is not null) sb.Append(CultureInfo.InvariantCulture, $", \"peer\": \"{peer}\"");
            if (flops > 0) sb.Append(CultureInfo.InvariantCulture, $", \"tflops\": {flops / (ms * 1e-3) / 1e12:R}");
            if (bytes > 0) sb.Append(CultureInfo.InvariantCulture, $", \"gbps\": {bytes / (ms * 1e-3) / 1e9:R}");
            sb.Append(extra).Append('}');
            rows.Add(sb.ToString());
            Console.WriteLine(sb.ToString());
        }
        var rng = new Random();
        Tensor Rand(DType dtype, long count, double scale = 1)
        {
            var t = b.Allocate(dtype, count);
            var host = new float[count];
            for (long i = 0; i < count; i++) host[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
            b.Upload(t, host);
            return t;
        }
        var k = b.Kernels;
        var bf = DType.BFloat16;

        // device-to-device copy, bytes read + written
        {
            int n = 1 << 29;
            using var src = Rand(bf, n);
            using var dst = b.Allocate(bf, n);
            Add("copy_1GiB", "copy_1GiB", KernelTimer.MedianMs(b, () => k.Copy2D(dst, n, src, n, 1, n)), bytes: 4.0 * n);
        }

        // GEMM 8192^3: plain, bias+GeLU with and without aux, bias; Y = X W^T
        {
            const int m = 8192, n = 8192, kk = 8192;
            using var x = Rand(bf, (long)m * kk);
            using var w = Rand(bf, (long)n * kk, 0.02);
            using var bias = Rand(bf, n);
            using var y = b.Allocate(bf, (long)m * n);
            using var aux = b.Allocate(bf, (long)m * n);
            double flops = 2.0 * m * n * kk;
            // Plain and fused timed in turn, as the peer times its matmul and linear + gelu: under the power limit a
            // GEMM's time depends on what ran just before it, so both sides are timed in the same pattern.
            Action plain = () => k.Gemm(y, x, w, m, n, kk, false, true);
            double[] ms = KernelTimer.InterleavedMedianMs(b,
            [
                plain,
                () => k.Gemm(y, x, w, m, n, kk, false, true, epilogue: GemmEpilogue.BiasGelu, bias: bias, aux: aux),
            ]);
            Add("gemm_bf16_8192", "gemm_bf16_8192", ms[0], flops);
            Add("gemm_bias_gelu_aux_8192", "linear_bias_gelu_8192", ms[1], flops);
            // bias + GeLU without aux (GELU_BIAS: the forward where no backward follows), in the same pattern.
            Add("gemm_bias_gelu_8192", "linear_bias_gelu_8192", KernelTimer.InterleavedMedianMs(b,
            [
                plain,
                () => k.Gemm(y, x, w, m, n, kk, false, true, epilogue: GemmEpilogue.BiasGelu, bias: bias),
            ])[1], flops);
            Add("gemm_bias_8192", null,
                KernelTimer.MedianMs(b, () => k.Gemm(y, x, w, m, n, kk, false, true, epilogue: GemmEpilogue.Bias, bias: bias)),
                flops);
            if (b is CudaBackend cuda)
            {
                foreach (string plan in cuda.Gemm.DescribePlans())
                {
                    Console.WriteLine($"# {plan}");
                }
            }
        }

        // add + RMSNorm (bf16): read x, residual; write sum, y
        foreach (int rws in new[] { 4096, 16 })
        {
            const int cols = 8192;
            long count = (long)rws * cols;
            int copies = KernelTimer.RotationCopies(4 * 2 * count, L2Bytes);
            var sets = Enumerable.Range(0, copies).Select(_ => (x: Rand(bf, count), r: Rand(bf, count), y: b.Allocate(bf, count), s: b.Allocate(bf, count))).ToList();
            using var wgt = Rand(bf, cols);
            using var stats = b.Allocate(DType.Float32, 2 * rws);
            int i = 0;
            Add($"add_rmsnorm_{rws}x{cols}", $"add_rmsnorm_{rws}x{cols}", KernelTimer.MedianMs(b, () =>
            {
                var s = sets[i++ % copies];
                k.NormForward(NormKind.RmsNorm, s.y, s.s, stats, s.x, s.r, wgt, null, rws, cols, 1e-5f);
            }), bytes: 4.0 * 2 * count);
            foreach (var s in sets) { s.x.Dispose(); s.r.Dispose(); s.y.Dispose(); s.s.Dispose(); }
        }

        // pointwise
        {
            long count = 4096L * 28672;
            using var x = Rand(bf, count);
            using var y = b.Allocate(bf, count);
            Add("gelu_4096x28672", "gelu_4096x28672", KernelTimer.MedianMs(b, () => k.GeluForward(y, x)), bytes: 2.0 * 2 * count);
            const int rws = 4096, cols = 14336;
            using var gu = Rand(bf, 2L * rws * cols);
            using var sw = b.Allocate(bf, (long)rws * cols);
            Add("swiglu_4096x14336", "swiglu_4096x14336", KernelTimer.MedianMs(b, () => k.SwigluForward(sw, gu, rws, cols)), bytes: 2.0 * 3 * rws * cols);
        }

        // attention: causal, 64 heads, 8 kv heads, batch 1
        int[] seqs = quick ? [1024, 4096] : [1024, 2048, 4096, 8192, 16384];
        foreach (int hd in new[] { 128, 64 })
        {
            foreach (int s in seqs)
            {
                var shape = new AttentionShape(1, s, 64, 8, hd, true);
                using var q = Rand(bf, (long)s * 64 * hd);
                using var kt = Rand(bf, (long)s * 8 * hd);
                using var v = Rand(bf, (long)s * 8 * hd);
                using var outp = b.Allocate(bf, (long)s * 64 * hd);
                using var lse = b.Allocate(DType.Float32, (long)64 * s);
                using var dO = Rand(bf, (long)s * 64 * hd);
                using var dq = b.Allocate(bf, (long)s * 64 * hd);
                using var dk = b.Allocate(bf, (long)s * 8 * hd);
                using var dv = b.Allocate(bf, (long)s * 8 * hd);
                double fwdFlops = 4.0 * s * (double)s * hd * 64 / 2;
                string extra = $", \"seq\": {s}, \"head_dim\": {hd}";
                Add($"attn_fwd_causal_hd{hd}_s{s}", $"sdpa_fwd_causal_hd{hd}_s{s}", KernelTimer.MedianMs(b, () => k.AttentionForward(outp, lse, q, kt, v, shape)), fwdFlops, extra: extra);
                Add($"attn_bwd_causal_hd{hd}_s{s}", $"sdpa_bwd_causal_hd{hd}_s{s}", KernelTimer.MedianMs(b, () => k.AttentionBackward(dq, dk, dv, dO, q, kt, v, outp, lse, shape)), 2.5 * fwdFlops, extra: extra);
            }
        }
        if (json is not null)
        {
            File.WriteAllText(json, $"{{\"implementation\": \"ModelParallel\", \"device\": \"{b.Name}\", \"rows\": [\n{string.Join(",\n", rows)}\n]}}\n");
        }
        return 0;
    }
}
