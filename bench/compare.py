"""Prints ours and the PyTorch peer side by side from the two JSON files the benchmarks write.

python3 bench/compare.py collectives OURS.json TORCH.json
python3 bench/compare.py kernels OURS.json TORCH.json
"""
import json
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def collectives(ours, torch):
    t = {(r["op"], r["size"]): r for r in torch["rows"]}
    print(f"# ModelParallel vs torch.distributed, {ours.get('gpus')} GPUs ({ours.get('device', '')})")
    print(f"{'op':>15} {'size':>12} {'ours us':>10} {'torch us':>10} {'ours busbw':>11} {'torch busbw':>12} {'ratio':>6}")
    for r in ours["rows"]:
        p = t.get((r["op"], r["size"]))
        if p is None:
            continue
        ratio = r["busbw"] / p["busbw"] if p["busbw"] > 0 else float("nan")
        print(f"{r['op']:>15} {r['size']:>12} {r['time_us']:>10.2f} {p['time_us']:>10.2f} "
              f"{r['busbw']:>11.2f} {p['busbw']:>12.2f} {ratio:>6.3f}")


def kernels(ours, torch):
    t = {r["name"]: r for r in torch["rows"]}
    print(f"# ModelParallel kernels vs PyTorch ({ours.get('device', '')})")
    print(f"{'kernel':>28} {'ours ms':>9} {'peer':>28} {'peer ms':>9} {'ours':>10} {'peer':>10} {'ratio':>6}")
    for r in ours["rows"]:
        peer = r.get("peer")
        p = t.get(peer) if peer else None
        unit = "tflops" if "tflops" in r else "gbps"
        mine = r.get(unit, float("nan"))
        if p is None:
            print(f"{r['name']:>28} {r['ms']:>9.4f} {'-':>28} {'-':>9} {mine:>10.1f} {'-':>10} {'-':>6}")
            continue
        theirs = p.get(unit, float("nan"))
        print(f"{r['name']:>28} {r['ms']:>9.4f} {peer:>28} {p['ms']:>9.4f} {mine:>10.1f} {theirs:>10.1f} "
              f"{mine / theirs if theirs else float('nan'):>6.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("collectives", "kernels"):
        sys.exit(__doc__)
    {"collectives": collectives, "kernels": kernels}[sys.argv[1]](load(sys.argv[2]), load(sys.argv[3]))
