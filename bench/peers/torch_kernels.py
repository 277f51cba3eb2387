"""PyTorch peer of the kernel benchmark: the same shapes as `mpbench kernels`, timed the same way
(CUDA events, warm-up, median of >= 20 runs, inputs rotated when larger than L2), written as JSON.

python3 bench/peers/torch_kernels.py --json torch_kernels.json [--quick]
"""
import argparse
import json
import math

import torch
import torch.nn.functional as F


def median_ms(fn, warmup=5, iters=20):
    return interleaved_median_ms([fn], warmup, iters)[0]


def interleaved_median_ms(fns, warmup=5, iters=20):
    """Medians of several regions timed in turn, so that clock and temperature drift falls on all alike."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    torch.cuda.synchronize()
    times = [[] for _ in fns]
    for _ in range(iters):
        for fn, t in zip(fns, times):
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            t.append(a.elapsed_time(b))
    return [sorted(t)[len(t) // 2] for t in times]


def rotating(make, nbytes_each, l2_bytes):
    copies = max(1, math.ceil(3 * l2_bytes / max(1, nbytes_each)))
    items = [make() for _ in range(min(copies, 8))]
    state = {"i": 0}

    def nxt():
        state["i"] = (state["i"] + 1) % len(items)
        return items[state["i"]]
    return nxt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    l2 = getattr(props, "L2_cache_size", 50 << 20)
    rows = []

    def add(name, ms, flops=None, nbytes=None, **extra):
        r = {"name": name, "ms": ms}
        if flops:
            r["tflops"] = flops / (ms * 1e-3) / 1e12
        if nbytes:
            r["gbps"] = nbytes / (ms * 1e-3) / 1e9
        r.update(extra)
        rows.append(r)
        print(json.dumps(r), flush=True)

    # device-to-device copy, bytes read + written
    n = 1 << 30
    src = torch.empty(n, dtype=torch.uint8, device=dev).random_()
    dst = torch.empty_like(src)
    add("copy_1GiB", median_ms(lambda: dst.copy_(src)), nbytes=2 * n)
    del src, dst

    # GEMM 8192^3 bf16, plain and linear+bias+gelu (unfused in eager)
    m = k = nn = 8192
    # the same operands as ours: uniform in [-1, 1), weights scaled by 0.02
    a = torch.rand(m, k, device=dev, dtype=torch.bfloat16) * 2 - 1
    w = 0.02 * (torch.rand(nn, k, device=dev, dtype=torch.bfloat16) * 2 - 1)
    bias = torch.rand(nn, device=dev, dtype=torch.bfloat16) * 2 - 1
    flops = 2.0 * m * nn * k
    plain, fused = interleaved_median_ms(
        [lambda: torch.matmul(a, w.t()), lambda: F.gelu(F.linear(a, w, bias), approximate="tanh")])
    add("gemm_bf16_8192", plain, flops=flops)
    add("linear_bias_gelu_8192", fused, flops=flops)
    del a, w, bias

    # add + RMSNorm, 4096x8192 and 16x8192 (bf16; read x, residual, write sum and y)
    for rws in (4096, 16):
        cols = 8192
        nxt = rotating(lambda: (torch.randn(rws, cols, device=dev, dtype=torch.bfloat16),
                                torch.randn(rws, cols, device=dev, dtype=torch.bfloat16)), 4 * rws * cols, l2)
        wgt = torch.randn(cols, device=dev, dtype=torch.bfloat16)

        def addnorm():
            x, r = nxt()
            s = x + r
            return F.rms_norm(s, (cols,), wgt, 1e-5), s
        add(f"add_rmsnorm_{rws}x{cols}", median_ms(addnorm), nbytes=4 * 2 * rws * cols)

    # GeLU / SwiGLU pointwise on 4096x28672 bf16
    x = torch.randn(4096, 28672, device=dev, dtype=torch.bfloat16)
    add("gelu_4096x28672", median_ms(lambda: F.gelu(x, approximate="tanh")), nbytes=2 * 2 * x.numel())
    gu = torch.randn(4096, 2 * 14336, device=dev, dtype=torch.bfloat16)
    add("swiglu_4096x14336", median_ms(lambda: F.silu(gu[:, :14336]) * gu[:, 14336:]), nbytes=2 * 3 * 4096 * 14336)
    del x, gu

    # SDPA causal, 64 heads (GQA 8 kv heads), head dim 64/128, seq 1k..16k, batch 1
    seqs = (1024, 4096) if args.quick else (1024, 2048, 4096, 8192, 16384)
    for hd in (128, 64):
        for s in seqs:
            h, hkv = 64, 8
            q = torch.randn(1, h, s, hd, device=dev, dtype=torch.bfloat16, requires_grad=True)
            kk = torch.randn(1, hkv, s, hd, device=dev, dtype=torch.bfloat16, requires_grad=True)
            v = torch.randn(1, hkv, s, hd, device=dev, dtype=torch.bfloat16, requires_grad=True)
            fwd_flops = 4.0 * s * s * hd * h / 2  # causal: half the score matrix
            fwd = lambda: F.scaled_dot_product_attention(q, kk, v, is_causal=True, enable_gqa=True)
            add(f"sdpa_fwd_causal_hd{hd}_s{s}", median_ms(fwd), flops=fwd_flops, seq=s, head_dim=hd)
            o = fwd()
            do = torch.randn_like(o)
            bwd = lambda: torch.autograd.grad(o, (q, kk, v), do, retain_graph=True)
            add(f"sdpa_bwd_causal_hd{hd}_s{s}", median_ms(bwd), flops=2.5 * fwd_flops, seq=s, head_dim=hd)
            del q, kk, v, o, do

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"implementation": "pytorch", "torch": torch.__version__, "device": props.name, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
