"""PyTorch peer of the kernel benchmark: the same shapes as `mpbench kernels`, timed the same way
(CUDA events, warm-up, median of blocks of back-to-back runs, inputs rotated when larger than L2), written as JSON.

python3 bench/peers/torch_kernels.py --json torch_kernels.json [--quick]
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


WARMUP_SECONDS = 0.5
BLOCK_MS = 10.0
MAX_RUNS_PER_BLOCK = 1000


def median_ms(fn, blocks=20):
    return interleaved_median_ms([fn], blocks)[0]


def elapsed_ms(fn, runs=1):
    a = torch.cuda.Event(enable_timing=True)
    b = torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(runs):
        fn()
    b.record()
    b.synchronize()
    return a.elapsed_time(b)


def interleaved_median_ms(fns, blocks=20):
    """Median time of one run of each region, as ours is measured: warm-up (at least three rounds and WARMUP_SECONDS),
    then blocks of back-to-back runs (about BLOCK_MS each) timed in turn, the median block over its runs."""
    fastest = [math.inf] * len(fns)
    start = time.perf_counter()
    rounds = 0
    while rounds < 3 or time.perf_counter() - start < WARMUP_SECONDS:
        for i, fn in enumerate(fns):
            fastest[i] = min(fastest[i], elapsed_ms(fn))
        rounds += 1
    runs = [max(1, min(MAX_RUNS_PER_BLOCK, math.ceil(BLOCK_MS / max(ms, 1e-4)))) for ms in fastest]
    times = [[] for _ in fns]
    for _ in range(blocks):
        for fn, n, t in zip(fns, runs, times):
            t.append(elapsed_ms(fn, n) / n)
    return [sorted(t)[len(t) // 2] for t in times]


def uniform(*shape, scale=1.0, requires_grad=False):
    """bf16 values uniform in [-scale, scale), drawn in float32 and rounded, as ours are (torch.rand in bf16 draws
    only multiples of 2^-8)."""
    t = ((torch.rand(*shape, device="cuda") * 2 - 1) * scale).to(torch.bfloat16)
    return t.requires_grad_(requires_grad)


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
    a = uniform(m, k)
    w = uniform(nn, k, scale=0.02)
    bias = uniform(nn)
    flops = 2.0 * m * nn * k
    plain, fused = interleaved_median_ms(
        [lambda: torch.matmul(a, w.t()), lambda: F.gelu(F.linear(a, w, bias), approximate="tanh")])
    add("gemm_bf16_8192", plain, flops=flops)
    add("linear_bias_gelu_8192", fused, flops=flops)
    del a, w, bias

    # add + RMSNorm, 4096x8192 and 16x8192 (bf16; read x, residual, write sum and y)
    for rws in (4096, 16):
        cols = 8192
        nxt = rotating(lambda: (uniform(rws, cols), uniform(rws, cols)), 4 * rws * cols, l2)
        wgt = uniform(cols)

        def addnorm():
            x, r = nxt()
            s = x + r
            return F.rms_norm(s, (cols,), wgt, 1e-5), s
        add(f"add_rmsnorm_{rws}x{cols}", median_ms(addnorm), nbytes=4 * 2 * rws * cols)

    # GeLU / SwiGLU pointwise on 4096x28672 bf16
    x = uniform(4096, 28672)
    add("gelu_4096x28672", median_ms(lambda: F.gelu(x, approximate="tanh")), nbytes=2 * 2 * x.numel())
    gu = uniform(4096, 2 * 14336)
    add("swiglu_4096x14336", median_ms(lambda: F.silu(gu[:, :14336]) * gu[:, 14336:]), nbytes=2 * 3 * 4096 * 14336)
    del x, gu

    # SDPA causal, 64 heads (GQA 8 kv heads), head dim 64/128, seq 1k..16k, batch 1
    seqs = (1024, 4096) if args.quick else (1024, 2048, 4096, 8192, 16384)
    for hd in (128, 64):
        for s in seqs:
            h, hkv = 64, 8
            q = uniform(1, h, s, hd, requires_grad=True)
            kk = uniform(1, hkv, s, hd, requires_grad=True)
            v = uniform(1, hkv, s, hd, requires_grad=True)
            fwd_flops = 4.0 * s * s * hd * h / 2  # causal: half the score matrix
            fwd = lambda: F.scaled_dot_product_attention(q, kk, v, is_causal=True, enable_gqa=True)
            add(f"sdpa_fwd_causal_hd{hd}_s{s}", median_ms(fwd), flops=fwd_flops, seq=s, head_dim=hd)
            o = fwd()
            do = uniform(*o.shape)
            bwd = lambda: torch.autograd.grad(o, (q, kk, v), do, retain_graph=True)
            add(f"sdpa_bwd_causal_hd{hd}_s{s}", median_ms(bwd), flops=2.5 * fwd_flops, seq=s, head_dim=hd)
            del q, kk, v, o, do

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"implementation": "pytorch", "torch": torch.__version__, "device": props.name, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
