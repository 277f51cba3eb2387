// Rotary position embedding, rotate-half form, in place on x [seq, batch, heads, head_dim].
#include <cmath>

#include "dtype.cuh"

namespace mp {
namespace rope {

constexpr int kMaxThreads = 1024;

// Each thread owns N consecutive pair indices i (pairs (i, i + head_dim/2)) for a fixed set of (batch, head)
// rows, so it computes its frequencies once and each angle once per position. Angles are formed and
// reduced modulo 2*pi in double so that long sequences keep float32 accuracy.
template <int N, typename T>
__global__ void rope_kernel(T* x, int seq, int rows_per_pos, int head_dim, double log2_theta, int position_offset,
                            bool backward) {
    const int half = head_dim / 2;
    const int vectors = half / N;
    const int p = threadIdx.x % vectors;
    const int row0 = threadIdx.x / vectors;
    const int row_step = blockDim.x / vectors;
    if (row0 >= row_step) return;  // threads beyond the last whole group of `vectors`
    double inv_freq[N];
#pragma unroll
    for (int k = 0; k < N; ++k) inv_freq[k] = exp2(-2.0 * (p * N + k) / head_dim * log2_theta);
    constexpr double kTwoPi = 6.283185307179586;
    for (int s = blockIdx.x; s < seq; s += gridDim.x) {
        const double position = static_cast<double>(s) + position_offset;
        float cs[N], sn[N];
#pragma unroll
        for (int k = 0; k < N; ++k) {
            const double angle = position * inv_freq[k];
            const float reduced = static_cast<float>(angle - rint(angle / kTwoPi) * kTwoPi);
            sincosf(reduced, &sn[k], &cs[k]);
            if (backward) sn[k] = -sn[k];
        }
        for (int row = row0; row < rows_per_pos; row += row_step) {
            T* base = x + (static_cast<int64_t>(s) * rows_per_pos + row) * head_dim + p * N;
            const Vec<T, N> a = load_vec<N>(base), b = load_vec<N>(base + half);
            Vec<T, N> ra, rb;
#pragma unroll
            for (int k = 0; k < N; ++k) {
                const float x1 = to_float(a.v[k]), x2 = to_float(b.v[k]);
                ra.v[k] = from_float<T>(x1 * cs[k] - x2 * sn[k]);
                rb.v[k] = from_float<T>(x2 * cs[k] + x1 * sn[k]);
            }
            store_vec<N>(base, ra);
            store_vec<N>(base + half, rb);
        }
    }
}

template <int N, typename T>
int launch_rope(T* x, int seq, int rows_per_pos, int head_dim, float theta, int position_offset, bool backward,
                cudaStream_t stream) {
    const int vectors = head_dim / 2 / N;
    if (vectors > kMaxThreads)
        MP_FAIL(MP_ERR_UNSUPPORTED, "mp_rope: head_dim %d needs %d threads per row (at most %d)", head_dim, vectors,
                kMaxThreads);
    const int groups = 256 / vectors > 1 ? 256 / vectors : 1;
    const int threads = ((vectors * groups + 31) / 32) * 32;
    int sms = 0;
    MP_TRY(sm_count(&sms));
    const int blocks = seq < sms * 8 ? seq : sms * 8;
    rope_kernel<N, T><<<blocks, threads, 0, stream>>>(x, seq, rows_per_pos, head_dim, std::log2(double(theta)),
                                                      position_offset, backward);
    MP_CHECK_LAUNCH("rope_kernel");
    return MP_OK;
}

template <typename T>
int rope_typed(TypeTag<T>, void* x, int seq, int rows_per_pos, int head_dim, float theta, int position_offset,
               bool backward, cudaStream_t stream) {
    constexpr int N = kVec16<T>;
    T* data = static_cast<T*>(x);
    if ((head_dim / 2) % N == 0 && aligned_to(x, 16))
        return launch_rope<N>(data, seq, rows_per_pos, head_dim, theta, position_offset, backward, stream);
    return launch_rope<1>(data, seq, rows_per_pos, head_dim, theta, position_offset, backward, stream);
}

}  // namespace rope
}  // namespace mp

using namespace mp;
using namespace mp::rope;

extern "C" MP_API int mp_rope(void* x, int seq, int batch, int heads, int head_dim, float theta, int position_offset,
                              int backward, int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(seq >= 0 && batch >= 0 && heads >= 0, "mp_rope: negative size (seq=%d batch=%d heads=%d)", seq, batch,
               heads);
    MP_REQUIRE(head_dim > 0 && head_dim % 2 == 0, "mp_rope: head_dim %d must be positive and even", head_dim);
    MP_REQUIRE(theta > 0.f, "mp_rope: theta %g must be positive", static_cast<double>(theta));
    MP_REQUIRE(static_cast<int64_t>(batch) * heads <= INT32_MAX, "mp_rope: batch*heads %lld is too large",
               static_cast<long long>(batch) * heads);
    const bool empty = seq == 0 || batch == 0 || heads == 0;
    MP_REQUIRE(empty || x, "mp_rope: x is null");
    if (empty) return require_float_dtype(dtype, "mp_rope");
    MP_DISPATCH_FLOAT(dtype, "mp_rope", rope_typed, x, seq, batch * heads, head_dim, theta, position_offset,
                      backward != 0, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}
