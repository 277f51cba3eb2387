// Flash-attention-2 backward: bf16 in/out, fp32 accumulation on tensor cores (mma.sync m16n8k16).
//
// 1. preprocess: D = rowsum(dO * O) per query row (float32, in the workspace); the dQ accumulator is zeroed.
// 2. main: one block of 8 warps owns kBlockKB = 128 keys of one (batch, kv head); each warp owns 16 keys and
//    keeps their dK and dV in registers while the block walks every query block of every query head of the
//    kv head's group, so GQA gradients are summed without atomics. Per query block (kBlockQB rows: 64, or 32
//    for head_dim 128):
//      S^T = K Q^T, P^T = exp2(S^T * scale * log2e - lse * log2e), dP^T = V dO^T, dS^T = P^T (dP^T - D),
//      dV += P^T dO, dK += dS^T Q, and dQ += dS K (dS^T through shared memory) into the float32 accumulator,
//      4 consecutive floats per 16-byte vector atomic. Q, dO, lse and D of the next query block arrive by cp.async
//      while the current one is processed.
// 3. dQ = scale * accumulator, converted to bf16.
#include "attention_common.cuh"
#include "pointwise.cuh"

namespace mp {
namespace attention {

constexpr int kBwdWarps = 8;
constexpr int kBwdThreads = kBwdWarps * 32;
constexpr int kBlockKB = kBwdWarps * 16;

// Query rows per step: 32 for head_dim 128 keeps dK, dV, S^T and dP^T within the register file.
constexpr int bwd_block_q(int head_dim) { return head_dim == 128 ? 32 : 64; }

template <int kHeadDim, int kBlockQB = bwd_block_q(kHeadDim)>
constexpr size_t bwd_smem_bytes() {
    return static_cast<size_t>(2 * kBlockKB * kHeadDim + 4 * kBlockQB * kHeadDim + kBlockKB * kBlockQB) * sizeof(bf16) +
           4 * kBlockQB * sizeof(float);
}

// Workspace layout: the float32 dQ accumulator [seq, batch, heads, head_dim], then D [batch, heads, seq].
struct BwdWorkspace {
    size_t dq_bytes;
    size_t total_bytes;
};

inline BwdWorkspace bwd_workspace(int batch, int seq, int heads, int head_dim) {
    const size_t rows = static_cast<size_t>(seq) * batch * heads;
    const size_t dq_bytes = (rows * head_dim * sizeof(float) + 255) / 256 * 256;
    return {dq_bytes, dq_bytes + rows * sizeof(float)};
}

// One warp per query row: dsum[b, h, s] = sum_d dO[s, b, h, d] * O[s, b, h, d].
template <int kHeadDim>
__global__ void attention_bwd_preprocess_kernel(float* __restrict__ dsum, const bf16* __restrict__ dout,
                                                const bf16* __restrict__ o, int batch, int seq, int heads) {
    constexpr int kPerLane = kHeadDim / 32;
    const int64_t rows = static_cast<int64_t>(seq) * batch * heads;
    const int lane = threadIdx.x % 32;
    const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
    for (int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; row < rows; row += warps) {
        const Vec<bf16, kPerLane> a = load_vec<kPerLane>(dout + row * kHeadDim + lane * kPerLane);
        const Vec<bf16, kPerLane> c = load_vec<kPerLane>(o + row * kHeadDim + lane * kPerLane);
        float sum = 0.f;
#pragma unroll
        for (int i = 0; i < kPerLane; ++i) sum += __bfloat162float(a.v[i]) * __bfloat162float(c.v[i]);
        sum = warp_sum(sum);
        if (lane == 0) {
            const int64_t bh_count = static_cast<int64_t>(batch) * heads;
            const int64_t s = row / bh_count, bh = row % bh_count;
            dsum[bh * seq + s] = sum;
        }
    }
}

// 4-byte global -> shared copy; when !valid the destination is zero-filled and nothing is read.
__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, bool valid) {
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    const int src_bytes = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_bytes));
}

// dst[0, 4) += v for 16-byte aligned dst: one vector reduction on sm_90 and later (each element is added
// atomically on its own, as with four scalar atomics), four scalar atomics before.
__device__ __forceinline__ void atomic_add_f32x4(float* dst, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    atomicAdd(reinterpret_cast<float4*>(dst), v);
#else
    atomicAdd(dst, v.x);
    atomicAdd(dst + 1, v.y);
    atomicAdd(dst + 2, v.z);
    atomicAdd(dst + 3, v.w);
#endif
}

template <int kHeadDim, bool kCausal, int kBlockQB = bwd_block_q(kHeadDim)>
__global__ void __launch_bounds__(kBwdThreads, 1)
    attention_bwd_kernel(float* __restrict__ dq_acc, bf16* __restrict__ dk, bf16* __restrict__ dv,
                         const bf16* __restrict__ dout, const bf16* __restrict__ q, const bf16* __restrict__ k,
                         const bf16* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ dsum,
                         int batch, int seq, int heads, int kv_heads, float scale, float scale_log2) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bf16* s_k = reinterpret_cast<bf16*>(smem_raw);                        // [kBlockKB][kHeadDim]
    bf16* s_v = s_k + kBlockKB * kHeadDim;                                // [kBlockKB][kHeadDim]
    bf16* s_q = s_v + kBlockKB * kHeadDim;                                // [2][kBlockQB][kHeadDim]
    bf16* s_do = s_q + 2 * kBlockQB * kHeadDim;                           // [2][kBlockQB][kHeadDim]
    bf16* s_ds = s_do + 2 * kBlockQB * kHeadDim;                          // [kBlockKB][kBlockQB]: dS^T
    float* s_lse = reinterpret_cast<float*>(s_ds + kBlockKB * kBlockQB);  // [2][kBlockQB]
    float* s_dsum = s_lse + 2 * kBlockQB;                                 // [2][kBlockQB]

    // Blocks are ordered heaviest first (for causal, the first key blocks meet the most queries).
    const int bk_count = batch * kv_heads;
    const int k_block = static_cast<int>(blockIdx.x / bk_count);
    const int bk = static_cast<int>(blockIdx.x % bk_count);
    const int b = bk / kv_heads, hk = bk % kv_heads;
    const int group = heads / kv_heads;
    const int64_t q_stride = static_cast<int64_t>(batch) * heads * kHeadDim;
    const int64_t kv_stride = static_cast<int64_t>(batch) * kv_heads * kHeadDim;
    const int64_t kv_offset = (static_cast<int64_t>(b) * kv_heads + hk) * kHeadDim;
    const int k0 = k_block * kBlockKB;
    const int q_begin = kCausal ? k0 / kBlockQB : 0;  // earlier query blocks see none of these keys
    const int q_count = (seq + kBlockQB - 1) / kBlockQB - q_begin;
    const int iterations = group * q_count;

    load_tile<kBlockKB, kHeadDim, kBwdThreads>(s_k, k + kv_offset, kv_stride, k0, seq);
    load_tile<kBlockKB, kHeadDim, kBwdThreads>(s_v, v + kv_offset, kv_stride, k0, seq);

    // Iteration t covers query head hk * group + t / q_count and query block q_begin + t % q_count.
    auto prefetch = [&](int t) {
        const int h = hk * group + t / q_count;
        const int q0 = (q_begin + t % q_count) * kBlockQB;
        const int stage = t & 1;
        const int64_t offset = (static_cast<int64_t>(b) * heads + h) * kHeadDim;
        load_tile<kBlockQB, kHeadDim, kBwdThreads>(s_q + stage * kBlockQB * kHeadDim, q + offset, q_stride, q0, seq);
        load_tile<kBlockQB, kHeadDim, kBwdThreads>(s_do + stage * kBlockQB * kHeadDim, dout + offset, q_stride, q0,
                                                   seq);
        // lse and D travel with the tiles (zero past the end: those queries are masked), so that no thread waits
        // on a global load before the barrier.
        const int64_t stats = (static_cast<int64_t>(b) * heads + h) * seq;
        const int r = threadIdx.x % kBlockQB;
        const bool valid = q0 + r < seq;
        if (threadIdx.x < kBlockQB) {
            cp_async_4(s_lse + stage * kBlockQB + r, valid ? lse + stats + q0 + r : lse, valid);
        } else if (threadIdx.x < 2 * kBlockQB) {
            cp_async_4(s_dsum + stage * kBlockQB + r, valid ? dsum + stats + q0 + r : dsum, valid);
        }
    };
    prefetch(0);
    cp_async_commit();

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, tig = lane % 4;
    const int mi = lane / 8, mr = lane % 8;
    const int key_a = k0 + warp * 16 + g, key_b = key_a + 8;

    constexpr int kDTiles = kHeadDim / 8;
    constexpr int kQTiles = kBlockQB / 8;
    float dk_acc[kDTiles][4], dv_acc[kDTiles][4];
#pragma unroll
    for (int i = 0; i < kDTiles; ++i) {
#pragma unroll
        for (int e = 0; e < 4; ++e) dk_acc[i][e] = dv_acc[i][e] = 0.f;
    }

    for (int t = 0; t < iterations; ++t) {
        if (t + 1 < iterations) {
            prefetch(t + 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();  // (A) this iteration's tiles are in shared memory; the last dS^T has been read

        const int stage = t & 1;
        const int h = hk * group + t / q_count;
        const int q0 = (q_begin + t % q_count) * kBlockQB;
        const bf16* sq = s_q + stage * kBlockQB * kHeadDim;
        const bf16* sdo = s_do + stage * kBlockQB * kHeadDim;
        const float* slse = s_lse + stage * kBlockQB;
        const float* sdsum = s_dsum + stage * kBlockQB;

        // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys and the block's kBlockQB queries.
        float s[kQTiles][4], dp[kQTiles][4];
#pragma unroll
        for (int i = 0; i < kQTiles; ++i) {
#pragma unroll
            for (int e = 0; e < 4; ++e) s[i][e] = dp[i][e] = 0.f;
        }
#pragma unroll
        for (int kk = 0; kk < kHeadDim / 16; ++kk) {
            uint32_t ka[4], va[4];
            ldmatrix_x4(ka, s_k + swizzle<kHeadDim>(warp * 16 + lane % 16, kk * 16 + (lane / 16) * 8));
            ldmatrix_x4(va, s_v + swizzle<kHeadDim>(warp * 16 + lane % 16, kk * 16 + (lane / 16) * 8));
#pragma unroll
            for (int np = 0; np < kQTiles / 2; ++np) {
                uint32_t bfrag[4];
                const int at = swizzle<kHeadDim>(np * 16 + (mi / 2) * 8 + mr, kk * 16 + (mi % 2) * 8);
                ldmatrix_x4(bfrag, sq + at);
                mma_16816(s[2 * np], ka, bfrag[0], bfrag[1]);
                mma_16816(s[2 * np + 1], ka, bfrag[2], bfrag[3]);
                ldmatrix_x4(bfrag, sdo + at);
                mma_16816(dp[2 * np], va, bfrag[0], bfrag[1]);
                mma_16816(dp[2 * np + 1], va, bfrag[2], bfrag[3]);
            }
        }

        // P^T (masked: keys or queries past the end, causal keys after the query) and dS^T = P^T (dP^T - D).
        const bool need_mask = k0 + kBlockKB > seq || q0 + kBlockQB > seq || (kCausal && k0 + warp * 16 + 15 > q0);
#pragma unroll
        for (int nt = 0; nt < kQTiles; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int col = nt * 8 + tig * 2 + (e & 1);
                float p = exp2f(s[nt][e] * scale_log2 - __fmul_rn(slse[col], kLog2e));
                if (need_mask) {
                    const int key = e < 2 ? key_a : key_b;
                    const int query = q0 + col;
                    if (key >= seq || query >= seq || (kCausal && key > query)) p = 0.f;
                }
                s[nt][e] = p;
                dp[nt][e] = p * (dp[nt][e] - sdsum[col]);
            }
        }

        // As bf16 A fragments (two adjacent query tiles form one): P^T for dV, dS^T for dK; dS^T also goes to
        // shared memory for the dQ product, whose A operand is dS (queries by keys).
        uint32_t pa[kQTiles / 2][4], da[kQTiles / 2][4];
#pragma unroll
        for (int kk = 0; kk < kQTiles / 2; ++kk) {
            pa[kk][0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
            pa[kk][1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
            pa[kk][2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[kk][3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
            da[kk][0] = pack_bf16(dp[2 * kk][0], dp[2 * kk][1]);
            da[kk][1] = pack_bf16(dp[2 * kk][2], dp[2 * kk][3]);
            da[kk][2] = pack_bf16(dp[2 * kk + 1][0], dp[2 * kk + 1][1]);
            da[kk][3] = pack_bf16(dp[2 * kk + 1][2], dp[2 * kk + 1][3]);
            const int row = warp * 16 + g;
            *reinterpret_cast<uint32_t*>(s_ds + swizzle<kBlockQB>(row, kk * 16 + tig * 2)) = da[kk][0];
            *reinterpret_cast<uint32_t*>(s_ds + swizzle<kBlockQB>(row + 8, kk * 16 + tig * 2)) = da[kk][1];
            *reinterpret_cast<uint32_t*>(s_ds + swizzle<kBlockQB>(row, kk * 16 + 8 + tig * 2)) = da[kk][2];
            *reinterpret_cast<uint32_t*>(s_ds + swizzle<kBlockQB>(row + 8, kk * 16 + 8 + tig * 2)) = da[kk][3];
        }

        // dV += P^T dO and dK += dS^T Q.
#pragma unroll
        for (int kk = 0; kk < kQTiles / 2; ++kk) {
#pragma unroll
            for (int dpi = 0; dpi < kHeadDim / 16; ++dpi) {
                uint32_t bfrag[4];
                const int at = swizzle<kHeadDim>(kk * 16 + (mi % 2) * 8 + mr, dpi * 16 + (mi / 2) * 8);
                ldmatrix_x4_trans(bfrag, sdo + at);
                mma_16816(dv_acc[2 * dpi], pa[kk], bfrag[0], bfrag[1]);
                mma_16816(dv_acc[2 * dpi + 1], pa[kk], bfrag[2], bfrag[3]);
                ldmatrix_x4_trans(bfrag, sq + at);
                mma_16816(dk_acc[2 * dpi], da[kk], bfrag[0], bfrag[1]);
                mma_16816(dk_acc[2 * dpi + 1], da[kk], bfrag[2], bfrag[3]);
            }
        }
        __syncthreads();  // (B) dS^T complete; Q, dO, lse and D of this stage are no longer read

        // dQ[kBlockQB x head_dim] += dS K: warp w takes query tile w % (kBlockQB / 16) and head_dim part
        // w / (kBlockQB / 16).
        constexpr int kQWarpTiles = kBlockQB / 16;
        constexpr int kDParts = kBwdWarps / kQWarpTiles;
        constexpr int kDPerWarp = kHeadDim / kDParts;
        const int mq = warp % kQWarpTiles, dpart = warp / kQWarpTiles;
        float dq[kDPerWarp / 8][4];
#pragma unroll
        for (int i = 0; i < kDPerWarp / 8; ++i) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < kBlockKB / 16; ++kk) {
            uint32_t afrag[4];
            ldmatrix_x4_trans(afrag, s_ds + swizzle<kBlockQB>(kk * 16 + (mi / 2) * 8 + mr, mq * 16 + (mi % 2) * 8));
#pragma unroll
            for (int dpi = 0; dpi < kDPerWarp / 16; ++dpi) {
                uint32_t bfrag[4];
                ldmatrix_x4_trans(bfrag, s_k + swizzle<kHeadDim>(kk * 16 + (mi % 2) * 8 + mr,
                                                                 dpart * kDPerWarp + dpi * 16 + (mi / 2) * 8));
                mma_16816(dq[2 * dpi], afrag, bfrag[0], bfrag[1]);
                mma_16816(dq[2 * dpi + 1], afrag, bfrag[2], bfrag[3]);
            }
        }
        // In tile nt a lane holds columns nt * 8 + tig * 2 + {0, 1} of rows g and g + 8. For each pair of tiles
        // (2p, 2p + 1), lanes tig and tig ^ 1 swap one column pair, so that an even lane holds columns
        // tig * 2 + [0, 4) of tile 2p and an odd lane (tig - 1) * 2 + [0, 4) of tile 2p + 1: 4 consecutive,
        // 16-byte aligned floats, added with one vector atomic.
        const bool odd = tig & 1;
        float* dq_head = dq_acc + (static_cast<int64_t>(b) * heads + h) * kHeadDim + dpart * kDPerWarp + (odd ? 8 : 0) +
                         (tig & 2) * 2;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int query = q0 + mq * 16 + g + 8 * r;
#pragma unroll
            for (int p = 0; p < kDPerWarp / 16; ++p) {
                const float* lo = dq[2 * p] + 2 * r;
                const float* hi = dq[2 * p + 1] + 2 * r;
                const float x = __shfl_xor_sync(0xffffffffu, odd ? lo[0] : hi[0], 1);
                const float y = __shfl_xor_sync(0xffffffffu, odd ? lo[1] : hi[1], 1);
                if (query < seq) {
                    atomic_add_f32x4(dq_head + query * q_stride + p * 16,
                                     odd ? make_float4(x, y, hi[0], hi[1]) : make_float4(lo[0], lo[1], x, y));
                }
            }
        }
    }

    // dK = scale * sum dS^T Q and dV, for this warp's keys inside the sequence.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int key = r == 0 ? key_a : key_b;
        if (key < seq) {
            bf16* dk_row = dk + key * kv_stride + kv_offset;
            bf16* dv_row = dv + key * kv_stride + kv_offset;
#pragma unroll
            for (int dt = 0; dt < kDTiles; ++dt) {
                *reinterpret_cast<uint32_t*>(dk_row + dt * 8 + tig * 2) =
                    pack_bf16(dk_acc[dt][2 * r] * scale, dk_acc[dt][2 * r + 1] * scale);
                *reinterpret_cast<uint32_t*>(dv_row + dt * 8 + tig * 2) =
                    pack_bf16(dv_acc[dt][2 * r], dv_acc[dt][2 * r + 1]);
            }
        }
    }
}

// dq = bf16(scale * accumulator).
struct DqConvertOp {
    bf16* dq;
    const float* acc;
    float scale;
    template <int M>
    __device__ void apply(int64_t i) const {
        const Vec<float, M> a = load_vec<M>(acc + i);
        Vec<bf16, M> out;
#pragma unroll
        for (int k = 0; k < M; ++k) out.v[k] = __float2bfloat16(a.v[k] * scale);
        store_vec<M>(dq + i, out);
    }
};

template <int kHeadDim, bool kCausal>
int launch_bwd(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
               const bf16* o, const float* lse, void* workspace, int batch, int seq, int heads, int kv_heads,
               float scale, cudaStream_t stream) {
    const BwdWorkspace layout = bwd_workspace(batch, seq, heads, kHeadDim);
    float* dq_acc = static_cast<float*>(workspace);
    float* dsum = reinterpret_cast<float*>(static_cast<unsigned char*>(workspace) + layout.dq_bytes);
    const int64_t rows = static_cast<int64_t>(seq) * batch * heads;

    MP_CHECK_CUDA(cudaMemsetAsync(dq_acc, 0, static_cast<size_t>(rows) * kHeadDim * sizeof(float), stream));
    int sms = 0;
    MP_TRY(sm_count(&sms));
    attention_bwd_preprocess_kernel<kHeadDim>
        <<<grid_for(rows * 32, 256, sms), 256, 0, stream>>>(dsum, dout, o, batch, seq, heads);
    MP_CHECK_LAUNCH("attention_bwd_preprocess_kernel");

    const auto kernel = attention_bwd_kernel<kHeadDim, kCausal>;
    constexpr size_t smem = bwd_smem_bytes<kHeadDim>();
    MP_TRY(allow_dynamic_smem(kernel, smem, "mp_attention_bwd"));
    const int64_t blocks = static_cast<int64_t>((seq + kBlockKB - 1) / kBlockKB) * batch * kv_heads;
    if (blocks > INT32_MAX)
        MP_FAIL(MP_ERR_UNSUPPORTED, "mp_attention_bwd: %lld blocks exceed the grid limit",
                static_cast<long long>(blocks));
    kernel<<<static_cast<unsigned>(blocks), kBwdThreads, smem, stream>>>(
        dq_acc, dk, dv, dout, q, k, v, lse, dsum, batch, seq, heads, kv_heads, scale, scale * kLog2e);
    MP_CHECK_LAUNCH("attention_bwd_kernel");

    return launch_pointwise<4>("attention_dq_convert_kernel", DqConvertOp{dq, dq_acc, scale}, rows * kHeadDim,
                               aligned_to(dq, 8), stream);
}

}  // namespace attention
}  // namespace mp

using namespace mp;
using namespace mp::attention;

extern "C" MP_API int mp_attention_bwd_workspace_bytes(size_t* bytes, int batch, int seq, int heads, int kv_heads,
                                                       int head_dim) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(bytes != nullptr, "mp_attention_bwd_workspace_bytes: bytes is null");
    MP_TRY(
        check_attention_shape("mp_attention_bwd_workspace_bytes", batch, seq, heads, kv_heads, head_dim, MP_BFLOAT16));
    *bytes = bwd_workspace(batch, seq, heads, head_dim).total_bytes;
    return MP_OK;
    MP_EXPORT_END
}

extern "C" MP_API int mp_attention_bwd(void* dq, void* dk, void* dv, const void* dout, const void* q, const void* k,
                                       const void* v, const void* o, const float* lse, void* workspace,
                                       size_t workspace_bytes, int batch, int seq, int heads, int kv_heads,
                                       int head_dim, int causal, float scale, int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_TRY(check_attention_shape("mp_attention_bwd", batch, seq, heads, kv_heads, head_dim, dtype));
    MP_REQUIRE(dq && dk && dv && dout && q && k && v && o && lse && workspace,
               "mp_attention_bwd: null pointer (dq=%p dk=%p dv=%p dout=%p q=%p k=%p v=%p o=%p lse=%p workspace=%p)", dq,
               dk, dv, dout, q, k, v, o, static_cast<const void*>(lse), workspace);
    MP_REQUIRE(aligned_to(dq, 16) && aligned_to(dk, 16) && aligned_to(dv, 16) && aligned_to(dout, 16) &&
                   aligned_to(q, 16) && aligned_to(k, 16) && aligned_to(v, 16) && aligned_to(o, 16) &&
                   aligned_to(workspace, 16),
               "mp_attention_bwd: dq, dk, dv, dout, q, k, v, o and workspace must be 16-byte aligned");
    const size_t needed = bwd_workspace(batch, seq, heads, head_dim).total_bytes;
    MP_REQUIRE(workspace_bytes >= needed, "mp_attention_bwd: workspace_bytes %zu is below the %zu needed",
               workspace_bytes, needed);
    auto* dqp = static_cast<bf16*>(dq);
    auto* dkp = static_cast<bf16*>(dk);
    auto* dvp = static_cast<bf16*>(dv);
    const auto* dop = static_cast<const bf16*>(dout);
    const auto* qp = static_cast<const bf16*>(q);
    const auto* kp = static_cast<const bf16*>(k);
    const auto* vp = static_cast<const bf16*>(v);
    const auto* op = static_cast<const bf16*>(o);
    const auto s = static_cast<cudaStream_t>(stream);
    if (head_dim == 64) {
        return causal ? launch_bwd<64, true>(dqp, dkp, dvp, dop, qp, kp, vp, op, lse, workspace, batch, seq, heads,
                                             kv_heads, scale, s)
                      : launch_bwd<64, false>(dqp, dkp, dvp, dop, qp, kp, vp, op, lse, workspace, batch, seq, heads,
                                              kv_heads, scale, s);
    }
    return causal ? launch_bwd<128, true>(dqp, dkp, dvp, dop, qp, kp, vp, op, lse, workspace, batch, seq, heads,
                                          kv_heads, scale, s)
                  : launch_bwd<128, false>(dqp, dkp, dvp, dop, qp, kp, vp, op, lse, workspace, batch, seq, heads,
                                           kv_heads, scale, s);
    MP_EXPORT_END
}
