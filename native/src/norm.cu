// RMSNorm and LayerNorm fused with the residual add, forward and backward.
#include "dtype.cuh"

namespace mp {
namespace norm {

constexpr int kThreads = 256;  // backward, and forward rows too long for registers

// N elements of T held in registers at T's own width, as 32-bit words (a bf16 pair or one float per word;
// a single bf16 in the low half). Elements are read and written as float. Kept packed, a bf16 row needs half
// the registers of its float copy.
template <typename T, int N>
struct Packed {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, __nv_bfloat16>, "float32 or bfloat16");
    static constexpr int kWords = N * sizeof(T) >= 4 ? N * static_cast<int>(sizeof(T)) / 4 : 1;
    uint32_t w[kWords];

    __device__ __forceinline__ float get(int k) const {
        if constexpr (std::is_same_v<T, float>) {
            return __uint_as_float(w[k]);
        } else {
            const uint32_t word = w[k / 2];
            return __uint_as_float(k % 2 == 0 ? word << 16 : word & 0xffff0000u);
        }
    }

    // Rounds to T (round to nearest even, as from_float).
    __device__ __forceinline__ void set(const float (&f)[N]) {
        if constexpr (std::is_same_v<T, float>) {
#pragma unroll
            for (int k = 0; k < N; ++k) w[k] = __float_as_uint(f[k]);
        } else if constexpr (N == 1) {
            w[0] = __bfloat16_as_ushort(__float2bfloat16(f[0]));
        } else {
#pragma unroll
            for (int k = 0; k < kWords; ++k) {
                const __nv_bfloat162 pair = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
                w[k] = static_cast<uint32_t>(__bfloat16_as_ushort(pair.x)) |
                       static_cast<uint32_t>(__bfloat16_as_ushort(pair.y)) << 16;
            }
        }
    }
};

template <int N, typename T>
__device__ __forceinline__ Packed<T, N> load_packed(const T* p) {
    using P = Packed<T, N>;
    P a;
    if constexpr (N * sizeof(T) >= 4) {
        const Vec<uint32_t, P::kWords> v = load_vec<P::kWords>(reinterpret_cast<const uint32_t*>(p));
#pragma unroll
        for (int k = 0; k < P::kWords; ++k) a.w[k] = v.v[k];
    } else {
        a.w[0] = *reinterpret_cast<const uint16_t*>(p);
    }
    return a;
}

template <int N, typename T>
__device__ __forceinline__ void store_packed(T* p, const Packed<T, N>& a) {
    using P = Packed<T, N>;
    if constexpr (N * sizeof(T) >= 4) {
        Vec<uint32_t, P::kWords> v;
#pragma unroll
        for (int k = 0; k < P::kWords; ++k) v.v[k] = a.w[k];
        store_vec<P::kWords>(reinterpret_cast<uint32_t*>(p), v);
    } else {
        *reinterpret_cast<uint16_t*>(p) = static_cast<uint16_t>(a.w[0]);
    }
}

// Sum over the threads that share a row: one warp, or the whole block.
template <bool kWarpPerRow>
__device__ __forceinline__ float row_sum(float x, float* scratch) {
    if constexpr (kWarpPerRow)
        return warp_sum(x);
    else
        return block_sum(x, scratch);
}

// Forward with the row in registers. A team owns one row: a warp (kWarpPerRow: the block's warps take
// consecutive rows, no block barrier) or the whole block (one row per block). Team thread t holds the
// N-element vectors starting at columns (i * team + t) * N, i < kVecs, so cols <= team * kVecs * N. Every load
// of x and residual is issued before any arithmetic (one pass over global memory, all the row's bytes in
// flight at once); the statistics and y come from the registers. The sum is rounded to T first: the
// statistics and y are computed from the stored values, which the backward reads.
template <int N, int kVecs, bool kWarpPerRow, int kMaxThreads, typename T, bool kLayerNorm>
__global__ void __launch_bounds__(kMaxThreads)
    norm_fwd_reg_kernel(T* y, T* sum, float* stats, const T* x, const T* residual, const T* weight, const T* bias,
                        int rows, int cols, float eps) {
    __shared__ float scratch[32];
    const int team = kWarpPerRow ? 32 : blockDim.x;
    const int t = kWarpPerRow ? threadIdx.x & 31 : threadIdx.x;
    const int r = kWarpPerRow ? blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5) : blockIdx.x;
    if (kWarpPerRow && r >= rows) return;  // a whole warp; the warp-per-row kernel has no block barrier
    const int64_t offset = static_cast<int64_t>(r) * cols;
    const bool with_bias = kLayerNorm && bias != nullptr;

    int col[kVecs];
#pragma unroll
    for (int i = 0; i < kVecs; ++i) col[i] = (i * team + t) * N;  // a vector lies wholly inside or past the row

    Packed<T, N> s[kVecs];
#pragma unroll
    for (int i = 0; i < kVecs; ++i)
        if (col[i] < cols) s[i] = load_packed<N>(x + offset + col[i]);
    if (residual != nullptr) {
        Packed<T, N> rv[kVecs];
#pragma unroll
        for (int i = 0; i < kVecs; ++i)
            if (col[i] < cols) rv[i] = load_packed<N>(residual + offset + col[i]);
#pragma unroll
        for (int i = 0; i < kVecs; ++i)
            if (col[i] < cols) {
                float f[N];
#pragma unroll
                for (int k = 0; k < N; ++k) f[k] = s[i].get(k) + rv[i].get(k);
                s[i].set(f);
            }
    }

    float acc = 0.f;
#pragma unroll
    for (int i = 0; i < kVecs; ++i)
        if (col[i] < cols) {
            if (sum != nullptr) store_packed<N>(sum + offset + col[i], s[i]);
#pragma unroll
            for (int k = 0; k < N; ++k) {
                const float v = s[i].get(k);
                acc += kLayerNorm ? v : v * v;
            }
        }

    // Weight (and bias) loads go out before the reduction, so their latency hides behind it.
    Packed<T, N> wv[kVecs], bv[kVecs];
#pragma unroll
    for (int i = 0; i < kVecs; ++i)
        if (col[i] < cols) {
            wv[i] = load_packed<N>(weight + col[i]);
            if (with_bias) bv[i] = load_packed<N>(bias + col[i]);
        }

    float mean = 0.f, rstd;
    if constexpr (kLayerNorm) {
        mean = row_sum<kWarpPerRow>(acc, scratch) / cols;
        float sq = 0.f;
#pragma unroll
        for (int i = 0; i < kVecs; ++i)
            if (col[i] < cols) {
#pragma unroll
                for (int k = 0; k < N; ++k) {
                    const float d = s[i].get(k) - mean;
                    sq += d * d;
                }
            }
        rstd = rsqrtf(row_sum<kWarpPerRow>(sq, scratch) / cols + eps);
    } else {
        rstd = rsqrtf(row_sum<kWarpPerRow>(acc, scratch) / cols + eps);
    }
    if (t == 0) {
        stats[r] = mean;
        stats[static_cast<int64_t>(rows) + r] = rstd;
    }
#pragma unroll
    for (int i = 0; i < kVecs; ++i)
        if (col[i] < cols) {
            float o[N];
#pragma unroll
            for (int k = 0; k < N; ++k) {
                o[k] = (s[i].get(k) - mean) * rstd * wv[i].get(k);
                if (with_bias) o[k] += bv[i].get(k);
            }
            Packed<T, N> out;
            out.set(o);
            store_packed<N>(y + offset + col[i], out);
        }
}

// Forward for rows too long for registers. One block per row (grid-stride). Thread t owns the vectors at
// t*N, (t + blockDim)*N, ...; the fp32 copy of its elements lives in shared memory, read back only by the
// thread that wrote it.
template <int N, typename T, bool kLayerNorm>
__global__ void __launch_bounds__(kThreads)
    norm_fwd_smem_kernel(T* y, T* sum, float* stats, const T* x, const T* residual, const T* weight, const T* bias,
                         int rows, int cols, float eps) {
    extern __shared__ __align__(16) float row_cache[];
    __shared__ float scratch[32];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const int64_t offset = static_cast<int64_t>(r) * cols;
        float acc = 0.f;
        for (int j = threadIdx.x * N; j < cols; j += blockDim.x * N) {
            const Vec<T, N> xv = load_vec<N>(x + offset + j);
            Vec<T, N> sv = xv;
            if (residual != nullptr) {
                const Vec<T, N> rv = load_vec<N>(residual + offset + j);
#pragma unroll
                for (int k = 0; k < N; ++k) sv.v[k] = from_float<T>(to_float(xv.v[k]) + to_float(rv.v[k]));
            }
            if (sum != nullptr) store_vec<N>(sum + offset + j, sv);
#pragma unroll
            for (int k = 0; k < N; ++k) {
                const float s = to_float(sv.v[k]);  // normalise the stored sum: backward sees the same values
                row_cache[j + k] = s;
                acc += kLayerNorm ? s : s * s;
            }
        }
        float mean = 0.f, rstd;
        if constexpr (kLayerNorm) {
            mean = block_sum(acc, scratch) / cols;
            float sq = 0.f;
            for (int j = threadIdx.x * N; j < cols; j += blockDim.x * N) {
#pragma unroll
                for (int k = 0; k < N; ++k) {
                    const float d = row_cache[j + k] - mean;
                    sq += d * d;
                }
            }
            rstd = rsqrtf(block_sum(sq, scratch) / cols + eps);
        } else {
            rstd = rsqrtf(block_sum(acc, scratch) / cols + eps);
        }
        if (threadIdx.x == 0) {
            stats[r] = mean;
            stats[rows + r] = rstd;
        }
        for (int j = threadIdx.x * N; j < cols; j += blockDim.x * N) {
            const Vec<T, N> wv = load_vec<N>(weight + j);
            Vec<T, N> bv;
            if (kLayerNorm && bias != nullptr) bv = load_vec<N>(bias + j);
            Vec<T, N> out;
#pragma unroll
            for (int k = 0; k < N; ++k) {
                float o = (row_cache[j + k] - mean) * rstd * to_float(wv.v[k]);
                if (kLayerNorm && bias != nullptr) o += to_float(bv.v[k]);
                out.v[k] = from_float<T>(o);
            }
            store_vec<N>(y + offset + j, out);
        }
    }
}

// One block per row (grid-stride). dx = rstd * (g - xhat * mean(g * xhat) [- mean(g) for LayerNorm]) with
// g = weight * dy, plus dresidual. Weight and bias gradients collect per thread in shared memory (each
// column owned by one thread) and are added to the float32 outputs once per block.
template <int N, typename T, bool kLayerNorm>
__global__ void __launch_bounds__(kThreads)
    norm_bwd_kernel(T* dx, float* dweight, float* dbias, const T* dy, const T* dresidual, const T* x, const T* weight,
                    const float* stats, int rows, int cols) {
    extern __shared__ __align__(16) float grad_cache[];
    float* dw_acc = grad_cache;
    float* db_acc = grad_cache + cols;
    const bool with_bias = kLayerNorm && dbias != nullptr;
    __shared__ float scratch[32];
    for (int j = threadIdx.x * N; j < cols; j += blockDim.x * N) {
#pragma unroll
        for (int k = 0; k < N; ++k) {
            dw_acc[j + k] = 0.f;
            if (with_bias) db_acc[j + k] = 0.f;
        }
    }
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const int64_t offset = static_cast<int64_t>(r) * cols;
        const float mean = kLayerNorm ? stats[r] : 0.f;
        const float rstd = stats[rows + r];
        float sum_gx = 0.f, sum_g = 0.f;
        for (int j = threadIdx.x * N; j < cols; j += blockDim.x * N) {
            const Vec<T, N> xv = load_vec<N>(x + offset + j), dyv = load_vec<N>(dy + offset + j);
            const Vec<T, N> wv = load_vec<N>(weight + j);
#pragma unroll
            for (int k = 0; k < N; ++k) {
                const float xhat = (to_float(xv.v[k]) - mean) * rstd;
                const float d = to_float(dyv.v[k]);
                const float g = d * to_float(wv.v[k]);
                sum_gx += g * xhat;
                sum_g += g;
                dw_acc[j + k] += d * xhat;
                if (with_bias) db_acc[j + k] += d;
            }
        }
        const float mean_gx = block_sum(sum_gx, scratch) / cols;
        const float mean_g = kLayerNorm ? block_sum(sum_g, scratch) / cols : 0.f;
        for (int j = threadIdx.x * N; j < cols; j += blockDim.x * N) {
            const Vec<T, N> xv = load_vec<N>(x + offset + j), dyv = load_vec<N>(dy + offset + j);
            const Vec<T, N> wv = load_vec<N>(weight + j);
            Vec<T, N> rv;
            if (dresidual != nullptr) rv = load_vec<N>(dresidual + offset + j);
            Vec<T, N> out;
#pragma unroll
            for (int k = 0; k < N; ++k) {
                const float xhat = (to_float(xv.v[k]) - mean) * rstd;
                const float g = to_float(dyv.v[k]) * to_float(wv.v[k]);
                float d = rstd * (g - xhat * mean_gx - mean_g);
                if (dresidual != nullptr) d += to_float(rv.v[k]);
                out.v[k] = from_float<T>(d);
            }
            store_vec<N>(dx + offset + j, out);
        }
    }
    for (int j = threadIdx.x * N; j < cols; j += blockDim.x * N) {
#pragma unroll
        for (int k = 0; k < N; ++k) {
            atomicAdd(dweight + j + k, dw_acc[j + k]);
            if (with_bias) atomicAdd(dbias + j + k, db_acc[j + k]);
        }
    }
}

template <int N, int kVecs, bool kWarpPerRow, int kMaxThreads, typename T, bool kLayerNorm>
int launch_fwd_reg(unsigned blocks, int threads, T* y, T* sum, float* stats, const T* x, const T* residual,
                   const T* weight, const T* bias, int rows, int cols, float eps, cudaStream_t stream) {
    norm_fwd_reg_kernel<N, kVecs, kWarpPerRow, kMaxThreads, T, kLayerNorm>
        <<<blocks, threads, 0, stream>>>(y, sum, stats, x, residual, weight, bias, rows, cols, eps);
    MP_CHECK_LAUNCH("norm_fwd_reg_kernel");
    return MP_OK;
}

// Forward shapes by row length in vectors (cols / N; bf16 16-byte vectors hold 8 elements, float32 4):
//   up to 128:  a warp per row, 4 vectors per thread, 4 rows per 128-thread block;
//   up to 512:  a block per row, 4 vectors per thread, 64 to 128 threads;
//   up to 4096: a block per row, 8 vectors per thread, 96 to 512 threads (bf16 cols 8192: 128 threads);
//   longer:     the shared-memory kernel.
// Blocks are sized to the row (threads = vectors / per-thread vectors, rounded up to whole warps).
template <int N, typename T, bool kLayerNorm>
int launch_fwd(T* y, T* sum, float* stats, const T* x, const T* residual, const T* weight, const T* bias, int rows,
               int cols, float eps, cudaStream_t stream) {
    const int vecs = cols / N;  // N divides cols
    const auto warps_for = [vecs](int per_thread) { return (vecs + 32 * per_thread - 1) / (32 * per_thread); };
    if (vecs <= 32 * 4) {
        constexpr int kRowsPerBlock = 4;
        const unsigned blocks = static_cast<unsigned>((rows - 1) / kRowsPerBlock + 1);
        return launch_fwd_reg<N, 4, true, 32 * kRowsPerBlock, T, kLayerNorm>(
            blocks, 32 * kRowsPerBlock, y, sum, stats, x, residual, weight, bias, rows, cols, eps, stream);
    }
    if (vecs <= 128 * 4)
        return launch_fwd_reg<N, 4, false, 128, T, kLayerNorm>(rows, 32 * warps_for(4), y, sum, stats, x, residual,
                                                                 weight, bias, rows, cols, eps, stream);
    if (vecs <= 512 * 8)
        return launch_fwd_reg<N, 8, false, 512, T, kLayerNorm>(rows, 32 * warps_for(8), y, sum, stats, x, residual,
                                                                 weight, bias, rows, cols, eps, stream);
    const auto kernel = norm_fwd_smem_kernel<N, T, kLayerNorm>;
    const size_t smem = static_cast<size_t>(cols) * sizeof(float);
    MP_TRY(allow_dynamic_smem(kernel, smem, "mp_norm_fwd"));
    int sms = 0;
    MP_TRY(sm_count(&sms));
    const int blocks = rows < sms * 8 ? rows : sms * 8;
    kernel<<<blocks, kThreads, smem, stream>>>(y, sum, stats, x, residual, weight, bias, rows, cols, eps);
    MP_CHECK_LAUNCH("norm_fwd_smem_kernel");
    return MP_OK;
}

template <int N, typename T, bool kLayerNorm>
int launch_bwd(T* dx, float* dweight, float* dbias, const T* dy, const T* dresidual, const T* x, const T* weight,
               const float* stats, int rows, int cols, cudaStream_t stream) {
    const auto kernel = norm_bwd_kernel<N, T, kLayerNorm>;
    const size_t smem = static_cast<size_t>(cols) * sizeof(float) * (kLayerNorm ? 2 : 1);
    MP_TRY(allow_dynamic_smem(kernel, smem, "mp_norm_bwd"));
    int sms = 0;
    MP_TRY(sm_count(&sms));
    const int blocks = rows < sms * 4 ? rows : sms * 4;
    kernel<<<blocks, kThreads, smem, stream>>>(dx, dweight, dbias, dy, dresidual, x, weight, stats, rows, cols);
    MP_CHECK_LAUNCH("norm_bwd_kernel");
    return MP_OK;
}

template <typename T>
int norm_fwd_typed(TypeTag<T>, int kind, void* y, void* sum, float* stats, const void* x, const void* residual,
                   const void* weight, const void* bias, int rows, int cols, float eps, cudaStream_t stream) {
    constexpr int N = kVec16<T>;
    T* yp = static_cast<T*>(y);
    T* sp = static_cast<T*>(sum);
    const T* xp = static_cast<const T*>(x);
    const T* rp = static_cast<const T*>(residual);
    const T* wp = static_cast<const T*>(weight);
    const T* bp = static_cast<const T*>(bias);
    const bool vec = cols % N == 0 && aligned_to(y, 16) && aligned_to(sum, 16) && aligned_to(x, 16) &&
                     aligned_to(residual, 16) && aligned_to(weight, 16) && aligned_to(bias, 16);
    if (kind == MP_LAYERNORM) {
        if (vec) return launch_fwd<N, T, true>(yp, sp, stats, xp, rp, wp, bp, rows, cols, eps, stream);
        return launch_fwd<1, T, true>(yp, sp, stats, xp, rp, wp, bp, rows, cols, eps, stream);
    }
    if (vec) return launch_fwd<N, T, false>(yp, sp, stats, xp, rp, wp, nullptr, rows, cols, eps, stream);
    return launch_fwd<1, T, false>(yp, sp, stats, xp, rp, wp, nullptr, rows, cols, eps, stream);
}

template <typename T>
int norm_bwd_typed(TypeTag<T>, int kind, void* dx, float* dweight, float* dbias, const void* dy, const void* dresidual,
                   const void* x, const void* weight, const float* stats, int rows, int cols, cudaStream_t stream) {
    constexpr int N = kVec16<T>;
    T* dxp = static_cast<T*>(dx);
    const T* dyp = static_cast<const T*>(dy);
    const T* rp = static_cast<const T*>(dresidual);
    const T* xp = static_cast<const T*>(x);
    const T* wp = static_cast<const T*>(weight);
    const bool vec = cols % N == 0 && aligned_to(dx, 16) && aligned_to(dy, 16) && aligned_to(dresidual, 16) &&
                     aligned_to(x, 16) && aligned_to(weight, 16);
    if (kind == MP_LAYERNORM) {
        if (vec) return launch_bwd<N, T, true>(dxp, dweight, dbias, dyp, rp, xp, wp, stats, rows, cols, stream);
        return launch_bwd<1, T, true>(dxp, dweight, dbias, dyp, rp, xp, wp, stats, rows, cols, stream);
    }
    if (vec) return launch_bwd<N, T, false>(dxp, dweight, nullptr, dyp, rp, xp, wp, stats, rows, cols, stream);
    return launch_bwd<1, T, false>(dxp, dweight, nullptr, dyp, rp, xp, wp, stats, rows, cols, stream);
}

}  // namespace norm
}  // namespace mp

using namespace mp;
using namespace mp::norm;

extern "C" MP_API int mp_norm_fwd(int kind, void* y, void* sum, float* stats, const void* x, const void* residual,
                                  const void* weight, const void* bias, int rows, int cols, float eps, int dtype,
                                  void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(kind == MP_RMSNORM || kind == MP_LAYERNORM, "mp_norm_fwd: unknown norm kind %d", kind);
    MP_REQUIRE(rows >= 0, "mp_norm_fwd: rows %d is negative", rows);
    MP_REQUIRE(cols > 0, "mp_norm_fwd: cols %d is not positive", cols);
    MP_REQUIRE(!(eps < 0.f), "mp_norm_fwd: eps %g is negative", static_cast<double>(eps));
    MP_REQUIRE(rows == 0 || (y && stats && x && weight), "mp_norm_fwd: null pointer (y=%p stats=%p x=%p weight=%p)", y,
               static_cast<void*>(stats), x, weight);
    if (rows == 0) return require_float_dtype(dtype, "mp_norm_fwd");
    MP_DISPATCH_FLOAT(dtype, "mp_norm_fwd", norm_fwd_typed, kind, y, sum, stats, x, residual, weight, bias, rows, cols,
                      eps, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_norm_bwd(int kind, void* dx, float* dweight, float* dbias, const void* dy,
                                  const void* dresidual, const void* x, const void* weight, const float* stats,
                                  int rows, int cols, int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(kind == MP_RMSNORM || kind == MP_LAYERNORM, "mp_norm_bwd: unknown norm kind %d", kind);
    MP_REQUIRE(rows >= 0, "mp_norm_bwd: rows %d is negative", rows);
    MP_REQUIRE(cols > 0, "mp_norm_bwd: cols %d is not positive", cols);
    MP_REQUIRE(rows == 0 || (dx && dweight && dy && x && weight && stats),
               "mp_norm_bwd: null pointer (dx=%p dweight=%p dy=%p x=%p weight=%p stats=%p)", dx,
               static_cast<void*>(dweight), dy, x, weight, static_cast<const void*>(stats));
    if (rows == 0) return require_float_dtype(dtype, "mp_norm_bwd");
    MP_DISPATCH_FLOAT(dtype, "mp_norm_bwd", norm_bwd_typed, kind, dx, dweight, dbias, dy, dresidual, x, weight, stats,
                      rows, cols, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}
