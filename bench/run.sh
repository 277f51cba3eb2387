#!/usr/bin/env bash
# Runs a ModelParallel benchmark and its PyTorch peer on the same GPUs, then prints them side by side.
#   bench/run.sh collectives [GPUS] [MAX_BYTES]   nccl-tests' table for ours and torch.distributed
#   bench/run.sh kernels [--quick]                GEMM epilogues, attention, norms, pointwise vs PyTorch
# Needs the managed build (artifacts/), libmpnative.so (MP_NATIVE_DIR), python3 with torch.
# JSON results go to ${BENCH_OUT:-bench/results}.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-bench/results}
mkdir -p "$out"
dotnet=${DOTNET:-dotnet}
mpbench="artifacts/bin/Bench/release/mpbench.dll"
[ -f "$mpbench" ] || { echo "missing $mpbench: run 'dotnet build -c Release' first" >&2; exit 1; }
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
what=${1:?usage: bench/run.sh collectives|kernels ...}
case "$what" in
  collectives)
    gpus=${2:-$(nvidia-smi -L | wc -l)}
    max=${3:-1G}
    for dtype in float bfloat16; do
      "$dotnet" "$mpbench" collectives --backend cuda --ranks "$gpus" --max-bytes "$max" --dtype "$dtype" \
        --json "$out/collectives-ours-$gpus-$dtype.json"
      maxb=$(python3 -c "s='$max';m={'K':1<<10,'M':1<<20,'G':1<<30};print(int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(s))")
      torchrun --standalone --nproc-per-node "$gpus" bench/peers/torch_collectives.py --dtype "$dtype" \
        --max-bytes "$maxb" --json "$out/collectives-torch-$gpus-$dtype.json" >/dev/null
      python3 bench/compare.py collectives "$out/collectives-ours-$gpus-$dtype.json" "$out/collectives-torch-$gpus-$dtype.json"
    done
    ;;
  kernels)
    shift
    "$dotnet" "$mpbench" kernels "$@" --json "$out/kernels-ours.json"
    python3 bench/peers/torch_kernels.py "$@" --json "$out/kernels-torch.json" >/dev/null
    python3 bench/compare.py kernels "$out/kernels-ours.json" "$out/kernels-torch.json"
    ;;
  *) echo "unknown benchmark '$what' (collectives, kernels)" >&2; exit 2 ;;
esac
