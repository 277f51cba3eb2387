#!/usr/bin/env bash
# Runs the GPU tests on a GPU host that has CUDA, NCCL and cmake but only the .NET runtime.
#
# Before: build the managed code where the .NET SDK is (dotnet build tests/Tests.csproj -c Release) and bring
# artifacts/ and the runtime tarball .gpu/dotnet-rt.tar.xz (scripts/pack-dotnet-runtime.sh) to the host.
#
# usage: scripts/gpu-suite.sh [--sanitize TEST_CLASS] [--hf-check DIR] [--bench BENCH_DLL [BENCH_ARGS...]]
#   --sanitize TEST_CLASS  also run that test class (e.g. ModelParallel.Tests.Gpu.CudaKernelsTests) under
#                          compute-sanitizer's memcheck
#   --hf-check DIR         also make a ~1B Llama with transformers in DIR (scripts/hf_llama_reference.py, unless
#                          DIR/reference.safetensors exists) and check this library's bf16 logits and gradients
#                          against transformers' float64 ones (mp hf --check)
#   --bench BENCH_DLL ...  also run a benchmark program (the rest of the arguments are passed to it)
set -euo pipefail

cd "$(dirname "$0")/.."
sanitize=""
hf_check=""
bench=()
while [ $# -gt 0 ]; do
    case "$1" in
        --sanitize)
            [ $# -ge 2 ] || { echo "gpu-suite: --sanitize needs a test class" >&2; exit 2; }
            sanitize="$2"
            shift 2
            ;;
        --hf-check)
            [ $# -ge 2 ] || { echo "gpu-suite: --hf-check needs a folder" >&2; exit 2; }
            hf_check="$2"
            shift 2
            ;;
        --bench)
            [ $# -ge 2 ] || { echo "gpu-suite: --bench needs the benchmark program's dll" >&2; exit 2; }
            shift
            bench=("$@")
            break
            ;;
        *)
            echo "gpu-suite: unknown argument '$1'" >&2
            echo "usage: scripts/gpu-suite.sh [--sanitize TEST_CLASS] [--hf-check DIR] [--bench BENCH_DLL [BENCH_ARGS...]]" >&2
            exit 2
            ;;
    esac
done

tests=artifacts/bin/Tests/release/Tests.dll
[ -f "$tests" ] || { echo "gpu-suite: $tests is missing: build it where the .NET SDK is and copy artifacts/ here" >&2; exit 1; }
[ -f .gpu/dotnet-rt.tar.xz ] || { echo "gpu-suite: .gpu/dotnet-rt.tar.xz is missing (see scripts/pack-dotnet-runtime.sh)" >&2; exit 1; }

export DOTNET_ROOT=/tmp/dotnet
if [ ! -x "$DOTNET_ROOT/dotnet" ]; then
    mkdir -p "$DOTNET_ROOT"
    tar -xJf .gpu/dotnet-rt.tar.xz -C "$DOTNET_ROOT"
fi
dotnet="$DOTNET_ROOT/dotnet"
export PATH="$DOTNET_ROOT:$PATH"

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build
export MP_NATIVE_DIR="$PWD/build"

# NVLink multicast (NVLS) stays off: it can take the shared GPUs of the host out of service.
export NCCL_NVLS_ENABLE=0

# NCCL may come only with the Python wheel (nvidia-nccl-cu13) rather than on the loader's path.
if ! ldconfig -p | grep -q 'libnccl\.so\.2'; then
    if nccl_dir="$(python3 -c 'import nvidia.nccl as m, os; print(os.path.join(m.__path__[0], "lib"))' 2>/dev/null)" \
        && [ -f "$nccl_dir/libnccl.so.2" ]; then
        export LD_LIBRARY_PATH="$nccl_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
fi

nvidia-smi -L || true
log="$(mktemp -t gpu-suite.XXXXXX)"
status=0
"$dotnet" "$tests" -trait "Category=Gpu" 2>&1 | tee "$log" || status=$?
echo
echo "=== GPU suite summary ==="
grep -E '\[FAIL\]|Tests +Total' "$log" || true

if [ -n "$sanitize" ]; then
    echo "=== compute-sanitizer memcheck: $sanitize ==="
    compute-sanitizer --tool memcheck --error-exitcode 3 --target-processes all \
        "$dotnet" "$tests" -class "$sanitize" || status=$?
fi

if [ -n "$hf_check" ]; then
    echo "=== Hugging Face Llama in bf16 against transformers in float64: $hf_check ==="
    if [ ! -f "$hf_check/reference.safetensors" ]; then
        python3 scripts/hf_llama_reference.py --out "$hf_check" || status=$?
    fi
    "$dotnet" artifacts/bin/Cli/release/mp.dll hf "$hf_check" --backend cuda --check "$hf_check/reference.safetensors" || status=$?
fi

if [ ${#bench[@]} -gt 0 ]; then
    echo "=== benchmark: ${bench[*]} ==="
    "$dotnet" "${bench[@]}" || status=$?
fi

exit "$status"
