// Flash-attention-2 forward: bf16 in/out, fp32 accumulation on tensor cores (mma.sync m16n8k16), online softmax.
//
// One block of 4 warps owns kBlockQ = 128 query rows of one (batch, head); each warp owns 32 rows (two 16-row
// MMA tiles, so that every K/V fragment read from shared memory feeds two MMAs) and keeps their output
// accumulator and running max/sum in registers; Q fragments are re-read from shared memory. Key/value
// tiles of kBlockK rows (64; 32 for head_dim 128) stream through a double-buffered cp.async pipeline; two blocks share
// an SM.
#include "attention_common.cuh"

namespace mp {
namespace attention {

constexpr int kFwdWarps = 4;
constexpr int kFwdThreads = kFwdWarps * 32;
constexpr int kWarpMTiles = 2;  // 16-row MMA tiles per warp
constexpr int kBlockQ = kFwdWarps * kWarpMTiles * 16;
// Keys per tile: 32 for head_dim 128 keeps the two S tiles and the two O accumulators within the register file.
constexpr int fwd_block_k(int head_dim) { return head_dim == 128 ? 32 : 64; }

template <int kHeadDim, int kBlockK = fwd_block_k(kHeadDim)>
constexpr size_t fwd_smem_bytes() {
    return static_cast<size_t>(kBlockQ + 4 * kBlockK) * kHeadDim * sizeof(bf16);
}

template <int kHeadDim, bool kCausal, int kBlockK = fwd_block_k(kHeadDim)>
__global__ void __launch_bounds__(kFwdThreads, 2)
    attention_fwd_kernel(bf16* __restrict__ o, float* __restrict__ lse, const bf16* __restrict__ q,
                         const bf16* __restrict__ k, const bf16* __restrict__ v, int batch, int seq, int heads,
                         int kv_heads, float scale_log2) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bf16* s_q = reinterpret_cast<bf16*>(smem_raw);  // [kBlockQ][kHeadDim]
    bf16* s_k = s_q + kBlockQ * kHeadDim;           // [2][kBlockK][kHeadDim]
    bf16* s_v = s_k + 2 * kBlockK * kHeadDim;       // [2][kBlockK][kHeadDim]

    // Blocks are ordered heaviest first (for causal, the last query blocks see the most keys).
    const int q_blocks = (seq + kBlockQ - 1) / kBlockQ;
    const int bh_count = batch * heads;
    const int q_block = q_blocks - 1 - static_cast<int>(blockIdx.x / bh_count);
    const int bh = static_cast<int>(blockIdx.x % bh_count);
    const int b = bh / heads, h = bh % heads;
    const int hk = h / (heads / kv_heads);
    const int64_t q_stride = static_cast<int64_t>(batch) * heads * kHeadDim;
    const int64_t kv_stride = static_cast<int64_t>(batch) * kv_heads * kHeadDim;
    const bf16* q_base = q + (static_cast<int64_t>(b) * heads + h) * kHeadDim;
    const bf16* k_base = k + (static_cast<int64_t>(b) * kv_heads + hk) * kHeadDim;
    const bf16* v_base = v + (static_cast<int64_t>(b) * kv_heads + hk) * kHeadDim;
    const int q0 = q_block * kBlockQ;
    const int key_end = kCausal ? min(seq, q0 + kBlockQ) : seq;
    const int k_blocks = (key_end + kBlockK - 1) / kBlockK;

    load_tile<kBlockQ, kHeadDim, kFwdThreads>(s_q, q_base, q_stride, q0, seq);
    load_tile<kBlockK, kHeadDim, kFwdThreads>(s_k, k_base, kv_stride, 0, seq);
    load_tile<kBlockK, kHeadDim, kFwdThreads>(s_v, v_base, kv_stride, 0, seq);
    cp_async_commit();

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, tig = lane % 4;
    const int mi = lane / 8, mr = lane % 8;           // ldmatrix: which 8x8 matrix this lane addresses, and its row
    const int warp_local0 = warp * kWarpMTiles * 16;  // first row of this warp inside the block
    const int warp_row0 = q0 + warp_local0;

    constexpr int kDTiles = kHeadDim / 8;
    constexpr int kKTiles = kBlockK / 8;
    // Per MMA tile mt: rows warp_row0 + 16 mt + g (r = 0) and + 8 (r = 1).
    float acc[kWarpMTiles][kDTiles][4];
#pragma unroll
    for (int mt = 0; mt < kWarpMTiles; ++mt) {
#pragma unroll
        for (int i = 0; i < kDTiles; ++i) acc[mt][i][0] = acc[mt][i][1] = acc[mt][i][2] = acc[mt][i][3] = 0.f;
    }
    float row_max[kWarpMTiles][2], row_sum[kWarpMTiles][2];  // row_sum: this thread's share, quad summed at the end
#pragma unroll
    for (int mt = 0; mt < kWarpMTiles; ++mt) {
        row_max[mt][0] = row_max[mt][1] = -INFINITY;
        row_sum[mt][0] = row_sum[mt][1] = 0.f;
    }

    for (int j = 0; j < k_blocks; ++j) {
        if (j + 1 < k_blocks) {
            const int stage = (j + 1) & 1;
            load_tile<kBlockK, kHeadDim, kFwdThreads>(s_k + stage * kBlockK * kHeadDim, k_base, kv_stride,
                                                      (j + 1) * kBlockK, seq);
            load_tile<kBlockK, kHeadDim, kFwdThreads>(s_v + stage * kBlockK * kHeadDim, v_base, kv_stride,
                                                      (j + 1) * kBlockK, seq);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();

        const bf16* s_kj = s_k + (j & 1) * kBlockK * kHeadDim;
        const bf16* s_vj = s_v + (j & 1) * kBlockK * kHeadDim;

        // S = Q K^T for this warp's 32 rows and the tile's kBlockK keys.
        float s[kWarpMTiles][kKTiles][4];
#pragma unroll
        for (int mt = 0; mt < kWarpMTiles; ++mt) {
#pragma unroll
            for (int i = 0; i < kKTiles; ++i) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;
        }
#pragma unroll
        for (int kk = 0; kk < kHeadDim / 16; ++kk) {
            uint32_t qfrag[kWarpMTiles][4];
#pragma unroll
            for (int mt = 0; mt < kWarpMTiles; ++mt)
                ldmatrix_x4(qfrag[mt],
                            s_q + swizzle<kHeadDim>(warp_local0 + mt * 16 + lane % 16, kk * 16 + (lane / 16) * 8));
#pragma unroll
            for (int np = 0; np < kKTiles / 2; ++np) {
                uint32_t bfrag[4];
                ldmatrix_x4(bfrag, s_kj + swizzle<kHeadDim>(np * 16 + (mi / 2) * 8 + mr, kk * 16 + (mi % 2) * 8));
#pragma unroll
                for (int mt = 0; mt < kWarpMTiles; ++mt) {
                    mma_16816(s[mt][2 * np], qfrag[mt], bfrag[0], bfrag[1]);
                    mma_16816(s[mt][2 * np + 1], qfrag[mt], bfrag[2], bfrag[3]);
                }
            }
        }

        // Scale into the log2 domain; mask keys past the end and (causal) keys after the query.
        const int k0 = j * kBlockK;
        const bool need_mask = k0 + kBlockK > seq || (kCausal && k0 + kBlockK - 1 > warp_row0);
#pragma unroll
        for (int mt = 0; mt < kWarpMTiles; ++mt) {
#pragma unroll
            for (int nt = 0; nt < kKTiles; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    float x = s[mt][nt][e] * scale_log2;
                    if (need_mask) {
                        const int key = k0 + nt * 8 + tig * 2 + (e & 1);
                        const int row = warp_row0 + mt * 16 + g + (e < 2 ? 0 : 8);
                        if (key >= seq || (kCausal && key > row)) x = -INFINITY;
                    }
                    s[mt][nt][e] = x;
                }
            }
        }

        // Online softmax: new running max, rescale the accumulator and the partial sums, P = exp2(S - max).
#pragma unroll
        for (int mt = 0; mt < kWarpMTiles; ++mt) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                float m = row_max[mt][r];
#pragma unroll
                for (int nt = 0; nt < kKTiles; ++nt) m = fmaxf(m, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
                m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
                m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
                const float m_use = m == -INFINITY ? 0.f : m;  // a row with every key masked so far
                const float alpha = exp2f(row_max[mt][r] - m_use);
                row_max[mt][r] = m;
                float sum = 0.f;
#pragma unroll
                for (int nt = 0; nt < kKTiles; ++nt) {
                    s[mt][nt][2 * r] = exp2f(s[mt][nt][2 * r] - m_use);
                    s[mt][nt][2 * r + 1] = exp2f(s[mt][nt][2 * r + 1] - m_use);
                    sum += s[mt][nt][2 * r] + s[mt][nt][2 * r + 1];
                }
                row_sum[mt][r] = row_sum[mt][r] * alpha + sum;
#pragma unroll
                for (int dt = 0; dt < kDTiles; ++dt) {
                    acc[mt][dt][2 * r] *= alpha;
                    acc[mt][dt][2 * r + 1] *= alpha;
                }
            }
        }

        // O += P V: the S accumulators of two adjacent key tiles form one A fragment.
#pragma unroll
        for (int kk = 0; kk < kBlockK / 16; ++kk) {
            uint32_t pfrag[kWarpMTiles][4];
#pragma unroll
            for (int mt = 0; mt < kWarpMTiles; ++mt) {
                pfrag[mt][0] = pack_bf16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                pfrag[mt][1] = pack_bf16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                pfrag[mt][2] = pack_bf16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                pfrag[mt][3] = pack_bf16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
#pragma unroll
            for (int dp = 0; dp < kHeadDim / 16; ++dp) {
                uint32_t bfrag[4];
                ldmatrix_x4_trans(bfrag, s_vj + swizzle<kHeadDim>(kk * 16 + (mi % 2) * 8 + mr, dp * 16 + (mi / 2) * 8));
#pragma unroll
                for (int mt = 0; mt < kWarpMTiles; ++mt) {
                    mma_16816(acc[mt][2 * dp], pfrag[mt], bfrag[0], bfrag[1]);
                    mma_16816(acc[mt][2 * dp + 1], pfrag[mt], bfrag[2], bfrag[3]);
                }
            }
        }
        __syncthreads();  // the next iteration's loads overwrite the stage just read
    }

    // Normalise, write lse, then O through this warp's rows of s_q (read only by this warp) for 16-byte stores.
#pragma unroll
    for (int mt = 0; mt < kWarpMTiles; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float l = row_sum[mt][r];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            const float inv = l > 0.f ? 1.f / l : 0.f;
            const int local = warp_local0 + mt * 16 + g + 8 * r;
            const int row = q0 + local;
            if (tig == 0 && row < seq) lse[static_cast<int64_t>(bh) * seq + row] = row_max[mt][r] * kLn2 + logf(l);
#pragma unroll
            for (int dt = 0; dt < kDTiles; ++dt) {
                *reinterpret_cast<uint32_t*>(s_q + swizzle<kHeadDim>(local, dt * 8 + tig * 2)) =
                    pack_bf16(acc[mt][dt][2 * r] * inv, acc[mt][dt][2 * r + 1] * inv);
            }
        }
    }
    __syncwarp();
    bf16* o_base = o + (static_cast<int64_t>(b) * heads + h) * kHeadDim;
    constexpr int kChunks = kHeadDim / 8;
#pragma unroll
    for (int i = lane; i < kWarpMTiles * 16 * kChunks; i += 32) {
        const int local = warp_local0 + i / kChunks, chunk = i % kChunks;
        const int row = q0 + local;
        if (row < seq) {
            *reinterpret_cast<uint4*>(o_base + row * q_stride + chunk * 8) =
                *reinterpret_cast<const uint4*>(s_q + swizzle<kHeadDim>(local, chunk * 8));
        }
    }
}

template <int kHeadDim, bool kCausal>
int launch_fwd(bf16* o, float* lse, const bf16* q, const bf16* k, const bf16* v, int batch, int seq, int heads,
               int kv_heads, float scale, cudaStream_t stream) {
    const auto kernel = attention_fwd_kernel<kHeadDim, kCausal>;
    constexpr size_t smem = fwd_smem_bytes<kHeadDim>();
    MP_TRY(allow_dynamic_smem(kernel, smem, "mp_attention_fwd"));
    const int64_t blocks = static_cast<int64_t>((seq + kBlockQ - 1) / kBlockQ) * batch * heads;
    if (blocks > INT32_MAX)
        MP_FAIL(MP_ERR_UNSUPPORTED, "mp_attention_fwd: %lld blocks exceed the grid limit",
                static_cast<long long>(blocks));
    kernel<<<static_cast<unsigned>(blocks), kFwdThreads, smem, stream>>>(o, lse, q, k, v, batch, seq, heads, kv_heads,
                                                                         scale * kLog2e);
    MP_CHECK_LAUNCH("attention_fwd_kernel");
    return MP_OK;
}

}  // namespace attention
}  // namespace mp

using namespace mp;
using namespace mp::attention;

extern "C" MP_API int mp_attention_fwd(void* o, float* lse, const void* q, const void* k, const void* v, int batch,
                                       int seq, int heads, int kv_heads, int head_dim, int causal, float scale,
                                       int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_TRY(check_attention_shape("mp_attention_fwd", batch, seq, heads, kv_heads, head_dim, dtype));
    MP_REQUIRE(o && lse && q && k && v, "mp_attention_fwd: null pointer (o=%p lse=%p q=%p k=%p v=%p)", o,
               static_cast<void*>(lse), q, k, v);
    MP_REQUIRE(aligned_to(o, 16) && aligned_to(q, 16) && aligned_to(k, 16) && aligned_to(v, 16),
               "mp_attention_fwd: o, q, k and v must be 16-byte aligned (o=%p q=%p k=%p v=%p)", o, q, k, v);
    auto* op = static_cast<bf16*>(o);
    const auto* qp = static_cast<const bf16*>(q);
    const auto* kp = static_cast<const bf16*>(k);
    const auto* vp = static_cast<const bf16*>(v);
    const auto s = static_cast<cudaStream_t>(stream);
    if (head_dim == 64) {
        return causal ? launch_fwd<64, true>(op, lse, qp, kp, vp, batch, seq, heads, kv_heads, scale, s)
                      : launch_fwd<64, false>(op, lse, qp, kp, vp, batch, seq, heads, kv_heads, scale, s);
    }
    return causal ? launch_fwd<128, true>(op, lse, qp, kp, vp, batch, seq, heads, kv_heads, scale, s)
                  : launch_fwd<128, false>(op, lse, qp, kp, vp, batch, seq, heads, kv_heads, scale, s);
    MP_EXPORT_END
}
