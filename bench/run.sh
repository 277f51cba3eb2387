#!/usr/bin/env bash
# Runs a ModelParallel benchmark and its PyTorch peer on the same GPUs, then prints them side by side.
#   bench/run.sh collectives [GPUS] [MAX_BYTES]   nccl-tests' table for ours and torch.distributed
#   bench/run.sh kernels [--quick] [--passes N]   GEMM epilogues, attention, norms, pointwise vs PyTorch, in N
#                                                 alternating passes of each (default 3)
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
    passes=3
    args=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --passes) passes=${2:-}; shift $(( $# >= 2 ? 2 : 1 )) ;;
        *) args+=("$1"); shift ;;
      esac
    done
    [[ "$passes" =~ ^[1-9][0-9]*$ ]] || { echo "--passes needs a positive count, got '$passes'" >&2; exit 2; }
    ours="" theirs=""
    for pass in $(seq 1 "$passes"); do
      "$dotnet" "$mpbench" kernels "${args[@]}" --json "$out/kernels-ours-$pass.json"
      python3 bench/peers/torch_kernels.py "${args[@]}" --json "$out/kernels-torch-$pass.json" >/dev/null
      ours+="${ours:+,}$out/kernels-ours-$pass.json"
      theirs+="${theirs:+,}$out/kernels-torch-$pass.json"
    done
    python3 bench/compare.py kernels "$ours" "$theirs"
    ;;
  *) echo "unknown benchmark '$what' (collectives, kernels)" >&2; exit 2 ;;
esac
