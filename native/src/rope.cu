// Rotary position embedding, rotate-half form, in place on x [seq, batch, heads, head_dim], with plain
// theta^(-2i/head_dim) frequencies or Llama 3.x's rescaled ones.
#include <cmath>

#include "dtype.cuh"

namespace mp {
namespace rope {

constexpr int kMaxThreads = 1024;
constexpr double kTwoPi = 6.283185307179586;  // 2 * pi in double, as 2 * Math.PI in C#

// What the inverse frequencies are: theta, and the Llama 3 scaling when llama3 is set.
struct Frequencies {
    double theta;
    bool llama3;
    mp_rope_scaling scaling;
};

// Inverse frequency of pair i: theta^(-2i/head_dim), rescaled by Llama 3 (Hugging Face's
// _compute_llama3_parameters) when set. The same expression, in double and in the same order, as the host's one
// definition, RotaryEmbedding.InverseFrequency (src/Runtime/RotaryEmbedding.cs).
__device__ __forceinline__ double inverse_frequency(const Frequencies& f, int pair, int head_dim) {
    const double inv_freq = pow(f.theta, -2.0 * pair / head_dim);
    if (!f.llama3) return inv_freq;
    const mp_rope_scaling& s = f.scaling;
    const double wavelen = kTwoPi / inv_freq;
    const double low_wavelen = s.original_max_positions / s.low_freq_factor;
    const double high_wavelen = s.original_max_positions / s.high_freq_factor;
    if (wavelen < high_wavelen) return inv_freq;              // high frequencies: unchanged
    if (wavelen > low_wavelen) return inv_freq / s.factor;   // low frequencies: divided by factor
    const double smooth =
        (s.original_max_positions / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    return (1.0 - smooth) * inv_freq / s.factor + smooth * inv_freq;  // in between: blended
}

// Each thread owns N consecutive pair indices i (pairs (i, i + head_dim/2)) for a fixed set of (batch, head)
// rows, so it computes its frequencies once and each angle once per position. Angles are formed and
// reduced modulo 2*pi in double so that long sequences keep float32 accuracy.
template <int N, typename T>
__global__ void rope_kernel(T* x, int seq, int rows_per_pos, int head_dim, Frequencies freq, int position_offset,
                            bool backward) {
    const int half = head_dim / 2;
    const int vectors = half / N;
    const int p = threadIdx.x % vectors;
    const int row0 = threadIdx.x / vectors;
    const int row_step = blockDim.x / vectors;
    if (row0 >= row_step) return;  // threads beyond the last whole group of `vectors`
    double inv_freq[N];
#pragma unroll
    for (int k = 0; k < N; ++k) inv_freq[k] = inverse_frequency(freq, p * N + k, head_dim);
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
int launch_rope(T* x, int seq, int rows_per_pos, int head_dim, const Frequencies& freq, int position_offset,
                bool backward, cudaStream_t stream) {
    const int vectors = head_dim / 2 / N;
    if (vectors > kMaxThreads)
        MP_FAIL(MP_ERR_UNSUPPORTED, "mp_rope: head_dim %d needs %d threads per row (at most %d)", head_dim, vectors,
                kMaxThreads);
    const int groups = 256 / vectors > 1 ? 256 / vectors : 1;
    const int threads = ((vectors * groups + 31) / 32) * 32;
    int sms = 0;
    MP_TRY(sm_count(&sms));
    const int blocks = seq < sms * 8 ? seq : sms * 8;
    rope_kernel<N, T><<<blocks, threads, 0, stream>>>(x, seq, rows_per_pos, head_dim, freq, position_offset,
                                                      backward);
    MP_CHECK_LAUNCH("rope_kernel");
    return MP_OK;
}

template <typename T>
int rope_typed(TypeTag<T>, void* x, int seq, int rows_per_pos, int head_dim, const Frequencies& freq,
               int position_offset, bool backward, cudaStream_t stream) {
    constexpr int N = kVec16<T>;
    T* data = static_cast<T*>(x);
    if ((head_dim / 2) % N == 0 && aligned_to(x, 16))
        return launch_rope<N>(data, seq, rows_per_pos, head_dim, freq, position_offset, backward, stream);
    return launch_rope<1>(data, seq, rows_per_pos, head_dim, freq, position_offset, backward, stream);
}

}  // namespace rope
}  // namespace mp

using namespace mp;
using namespace mp::rope;

extern "C" MP_API int mp_rope(void* x, int seq, int batch, int heads, int head_dim, double theta,
                              const mp_rope_scaling* llama3, int position_offset, int backward, int dtype,
                              void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(seq >= 0 && batch >= 0 && heads >= 0, "mp_rope: negative size (seq=%d batch=%d heads=%d)", seq, batch,
               heads);
    MP_REQUIRE(head_dim > 0 && head_dim % 2 == 0, "mp_rope: head_dim %d must be positive and even", head_dim);
    MP_REQUIRE(theta > 0.0 && std::isfinite(theta), "mp_rope: theta %g must be positive and finite", theta);
    MP_REQUIRE(position_offset >= 0, "mp_rope: position_offset %d must not be negative", position_offset);
    Frequencies freq{theta, llama3 != nullptr, {}};
    if (llama3) {
        const mp_rope_scaling& s = *llama3;
        MP_REQUIRE(std::isfinite(s.factor) && s.factor >= 1.0, "mp_rope: llama3 factor %g must be finite and at least 1",
                   s.factor);
        MP_REQUIRE(std::isfinite(s.low_freq_factor) && s.low_freq_factor > 0.0,
                   "mp_rope: llama3 low_freq_factor %g must be positive and finite", s.low_freq_factor);
        MP_REQUIRE(std::isfinite(s.high_freq_factor) && s.high_freq_factor > s.low_freq_factor,
                   "mp_rope: llama3 high_freq_factor %g must be finite and greater than low_freq_factor %g",
                   s.high_freq_factor, s.low_freq_factor);
        MP_REQUIRE(std::isfinite(s.original_max_positions) && s.original_max_positions > 0.0,
                   "mp_rope: llama3 original_max_positions %g must be positive and finite", s.original_max_positions);
        freq.scaling = s;
    }
    MP_REQUIRE(static_cast<int64_t>(batch) * heads <= INT32_MAX, "mp_rope: batch*heads %lld is too large",
               static_cast<long long>(batch) * heads);
    const bool empty = seq == 0 || batch == 0 || heads == 0;
    MP_REQUIRE(empty || x, "mp_rope: x is null");
    if (empty) return require_float_dtype(dtype, "mp_rope");
    MP_DISPATCH_FLOAT(dtype, "mp_rope", rope_typed, x, seq, batch * heads, head_dim, freq, position_offset,
                      backward != 0, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}
