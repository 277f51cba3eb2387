"""PyTorch + NCCL peer of the collective benchmark, in nccl-tests' form.

Run one process per GPU:  torchrun --nproc-per-node N bench/peers/torch_collectives.py --json out.json
Rows: size (bytes), count (elements), type, time (us, median), algbw and busbw (GB/s = 1e9 B/s).
busbw = algbw * 2(n-1)/n for all_reduce, (n-1)/n for all_gather and reduce_scatter, 1 for broadcast.
"""
import argparse
import json
import os

import torch
import torch.distributed as dist

DTYPES = {"float": torch.float32, "bfloat16": torch.bfloat16}
FACTORS = {
    "all_reduce": lambda n: 2 * (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "broadcast": lambda n: 1.0,
}


def sizes(lo, hi):
    s = lo
    while s <= hi:
        yield s
        s *= 2


def run_op(op, send, recv):
    if op == "all_reduce":
        dist.all_reduce(send)
    elif op == "all_gather":
        dist.all_gather_into_tensor(recv, send)
    elif op == "reduce_scatter":
        dist.reduce_scatter_tensor(recv, send)
    else:
        dist.broadcast(send, 0)


def measure(op, nbytes, dtype, world, warmup, iters):
    elem = torch.tensor([], dtype=dtype).element_size()
    count = max(1, nbytes // elem)
    # all_gather: size is the gathered output; reduce_scatter: the input (nccl-tests convention)
    if op == "all_gather":
        count = max(world, count - count % world)
        send = torch.randn(count // world, device="cuda").to(dtype)
        recv = torch.empty(count, device="cuda", dtype=dtype)
    elif op == "reduce_scatter":
        count = max(world, count - count % world)
        send = torch.randn(count, device="cuda").to(dtype)
        recv = torch.empty(count // world, device="cuda", dtype=dtype)
    else:
        send = torch.randn(count, device="cuda").to(dtype)
        recv = None
    for _ in range(warmup):
        run_op(op, send, recv)
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        dist.barrier()
        start.record()
        run_op(op, send, recv)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) * 1000.0)
    t = torch.tensor(times, device="cuda")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)  # slowest rank per iteration, like nccl-tests
    us = float(t.median().item())
    size = count * elem
    algbw = size / (us * 1e-6) / 1e9
    return {"op": op, "size": size, "count": count, "type": [k for k, v in DTYPES.items() if v == dtype][0],
            "time_us": us, "algbw": algbw, "busbw": algbw * FACTORS[op](world)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", default="all_reduce,all_gather,reduce_scatter,broadcast")
    ap.add_argument("--min-bytes", type=int, default=8)
    ap.add_argument("--max-bytes", type=int, default=1 << 30)
    ap.add_argument("--dtype", default="float", choices=sorted(DTYPES))
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    world = dist.get_world_size()
    rows = []
    for op in args.ops.split(","):
        if dist.get_rank() == 0:
            print(f"# torch.distributed {op}, {world} GPUs, {args.dtype}")
            print(f"{'size':>12} {'count':>12} {'type':>8} {'time(us)':>10} {'algbw':>8} {'busbw':>8}")
        for nbytes in sizes(args.min_bytes, args.max_bytes):
            iters = args.iters if nbytes < (256 << 20) else max(20, args.iters // 2)
            r = measure(op, nbytes, DTYPES[args.dtype], world, args.warmup, iters)
            rows.append(r)
            if dist.get_rank() == 0:
                print(f"{r['size']:>12} {r['count']:>12} {r['type']:>8} {r['time_us']:>10.2f} "
                      f"{r['algbw']:>8.2f} {r['busbw']:>8.2f}", flush=True)
    if dist.get_rank() == 0 and args.json:
        with open(args.json, "w") as f:
            json.dump({"implementation": "torch.distributed", "torch": torch.__version__,
                       "nccl": ".".join(map(str, torch.cuda.nccl.version())), "gpus": world,
                       "device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
