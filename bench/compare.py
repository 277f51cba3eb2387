"""Prints ours and the PyTorch peer side by side from the two JSON files the benchmarks write.

python3 bench/compare.py collectives OURS.json TORCH.json
python3 bench/compare.py kernels OURS1.json[,OURS2.json...] TORCH1.json[,TORCH2.json...]   (passes in the order run)
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


def median(values):
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else 0.5 * (v[mid - 1] + v[mid])


def kernels(ours_passes, torch_passes):
    """Passes alternate (ours 1, torch 1, ours 2, ...): each row's ratio is the median of the ratios of passes run
    side by side, so that the GPU's state drifting between passes does not fall on one side only."""
    if len(ours_passes) != len(torch_passes):
        sys.exit(f"compare: {len(ours_passes)} passes of ours but {len(torch_passes)} of the peer")
    peers = [{r["name"]: r for r in t["rows"]} for t in torch_passes]
    ours = [{r["name"]: r for r in o["rows"]} for o in ours_passes]
    first = ours_passes[0]
    print(f"# ModelParallel kernels vs PyTorch ({first.get('device', '')}), {len(ours_passes)} alternating passes: "
          "medians, ratio range over the passes")
    print(f"{'kernel':>28} {'ours ms':>9} {'peer':>28} {'peer ms':>9} {'ours':>10} {'peer':>10} {'ratio':>6} {'range':>13}")
    for r in first["rows"]:
        name, peer = r["name"], r.get("peer")
        unit = "tflops" if "tflops" in r else "gbps"
        rows = [o.get(name) for o in ours]
        if any(x is None for x in rows):
            sys.exit(f"compare: row {name} is missing from a pass of ours")
        mine = median(x.get(unit, float("nan")) for x in rows)
        ms = median(x["ms"] for x in rows)
        theirs_rows = [t.get(peer) for t in peers] if peer else []
        if not theirs_rows or any(p is None for p in theirs_rows):
            print(f"{name:>28} {ms:>9.4f} {'-':>28} {'-':>9} {mine:>10.1f} {'-':>10} {'-':>6} {'-':>13}")
            continue
        theirs = median(p.get(unit, float("nan")) for p in theirs_rows)
        ratios = [x.get(unit, float("nan")) / p[unit] if p.get(unit) else float("nan") for x, p in zip(rows, theirs_rows)]
        spread = f"{min(ratios):.3f}-{max(ratios):.3f}" if len(ratios) > 1 else "-"
        print(f"{name:>28} {ms:>9.4f} {peer:>28} {median(p['ms'] for p in theirs_rows):>9.4f} {mine:>10.1f} "
              f"{theirs:>10.1f} {median(ratios):>6.3f} {spread:>13}")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("collectives", "kernels"):
        sys.exit(__doc__)
    if sys.argv[1] == "collectives":
        collectives(load(sys.argv[2]), load(sys.argv[3]))
    else:
        kernels([load(p) for p in sys.argv[2].split(",")], [load(p) for p in sys.argv[3].split(",")])
