// Grid-stride launcher for elementwise operations with a 16-byte vector path and a scalar tail.
#pragma once

#include "dtype.cuh"

namespace mp {

// Op provides `template <int M> __device__ void apply(int64_t i) const` handling elements [i, i + M).
// Vectors of N cover [0, count - count % N); the last count % N elements go one at a time.
template <int N, typename Op>
__global__ void pointwise_kernel(Op op, int64_t count) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t vectors = count / N;
    for (int64_t i = first; i < vectors; i += stride) op.template apply<N>(i * N);
    if constexpr (N > 1) {
        const int64_t t = vectors * N + first;
        if (t < count) op.template apply<1>(t);
    }
}

// Launches pointwise_kernel<N> when `vectorizable` (every pointer aligned to N elements), else <1>.
template <int N, typename Op>
int launch_pointwise(const char* name, const Op& op, int64_t count, bool vectorizable, cudaStream_t stream) {
    if (count == 0) return MP_OK;
    constexpr int kThreads = 256;
    int sms = 0;
    MP_TRY(sm_count(&sms));
    if (vectorizable && N > 1) {
        pointwise_kernel<N, Op><<<grid_for(count / N, kThreads, sms), kThreads, 0, stream>>>(op, count);
    } else {
        pointwise_kernel<1, Op><<<grid_for(count, kThreads, sms), kThreads, 0, stream>>>(op, count);
    }
    MP_CHECK_LAUNCH(name);
    return MP_OK;
}

}  // namespace mp
