// Flash attention forward for Hopper (sm_90a): bf16 in/out, fp32 accumulation with warpgroup MMA (wgmma), online
// softmax in registers, tiles loaded by the tensor memory accelerator (TMA).
//
// One block owns kBlockQ = 128 query rows of one (batch, head): two consumer warpgroups of 64 rows each and one
// producer warp. Q, K and V tiles live in shared memory in the 128-byte-swizzled layout that both TMA writes and
// wgmma reads (panels of 64 columns, see kPanelBytes). The producer's first lane loads Q once and streams K and V
// tiles of kBlockK = 128 keys through two stages each, every stage guarded by a "full" mbarrier (bytes landed)
// and an "empty" one (every consumer warp done with it); the warpgroups never wait for each other. Per key tile:
//   S = Q K^T       wgmma m64n128k16, both operands from shared memory (head_dim / 16 instructions);
//   softmax         mask, running max and sum, P = exp2(S * scale * log2 e - max), O rescaled, in registers;
//   O += P V        wgmma m64n{head_dim}k16 with P as the register A operand and V read MN-major (8 instructions).
// S of tile j and P V of tile j - 1 run on the tensor cores while the softmax of tile j waits only for the first.
// Causal blocks are launched heaviest first. The kernel needs sm_90a; other architectures get a body that traps,
// and the launcher refuses devices other than compute capability 9.0.
#include "attention_common.cuh"
#include "wgmma.cuh"

namespace mp {
namespace attention {

constexpr int kFwdWarpGroups = 2;                        // consumers
constexpr int kFwdThreads = (kFwdWarpGroups + 1) * 128;  // + the producer warpgroup
// Registers per thread once the block runs: the producer gives most of its share to the consumers (the block's
// 3 x 128 threads start with 168 each; 24 + 2 x 240 fits the same 64K-register file).
constexpr int kProducerRegisters = 24;
constexpr int kConsumerRegisters = 240;
constexpr int kBlockQ = kFwdWarpGroups * 64;
constexpr int kBlockK = 128;

// Q, K and V tiles are all 128 rows (see panel_bytes for their shared-memory layout).
constexpr int kTileRows = 128;
static_assert(kBlockQ == kTileRows && kBlockK == kTileRows, "Q and K/V tiles share one layout");
constexpr uint32_t kPanelBytes = panel_bytes<kTileRows>();

template <int kHeadDim>
constexpr uint32_t fwd_tile_bytes() {
    return tile_bytes<kTileRows, kHeadDim>();
}

// Q, two K stages, two V stages, the barriers, and slack to align the start to the 1024-byte swizzle atom.
constexpr int kStages = 2;
struct FwdBarriers {
    uint64_t q_full;
    uint64_t k_full[kStages], k_empty[kStages];
    uint64_t v_full[kStages], v_empty[kStages];
};

template <int kHeadDim>
constexpr size_t fwd_smem_bytes() {
    return (1 + 2 * kStages) * static_cast<size_t>(fwd_tile_bytes<kHeadDim>()) + sizeof(FwdBarriers) + 1024;
}

template <int kHeadDim>
__device__ __forceinline__ void load_fwd_tile(unsigned char* tile, const CUtensorMap* map, uint64_t* bar, int head,
                                              int row0) {
    tma::arrive_expect_bytes(bar, fwd_tile_bytes<kHeadDim>());
    tma_load_tile<kTileRows, kHeadDim>(tile, map, bar, head, row0);
}

// S[64 x 128] = Q K^T for this warpgroup's 64 rows: 16 head-dim columns (32 bytes of the swizzled row) per
// instruction, the head-dim panels kPanelBytes apart.
template <int kHeadDim>
__device__ __forceinline__ void qk_scores(float (&s)[kBlockK / 2], uint32_t q_addr, uint32_t k_addr) {
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
        const uint32_t offset = (kk / 4) * kPanelBytes + (kk % 4) * 32;
        wgmma::wgmma_m64n128k16_ss(s, wgmma::desc_sw128(q_addr + offset, 16, 1024),
                                   wgmma::desc_sw128(k_addr + offset, 16, 1024), kk > 0);
    }
}

// Keys past the end and (causal) keys after the query become -inf; only the diagonal and the last tile need it.
template <bool kCausal>
__device__ __forceinline__ void mask_scores(float (&s)[kBlockK / 2], int k0, int seq, int wg_row0, int row0, int t) {
    if (k0 + kBlockK <= seq && !(kCausal && k0 + kBlockK - 1 > wg_row0)) return;
#pragma unroll
    for (int c = 0; c < kBlockK / 8; ++c) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int key = k0 + 8 * c + 2 * t + (e & 1);
            const int row = row0 + (e < 2 ? 0 : 8);
            if (key >= seq || (kCausal && key > row)) s[4 * c + e] = -INFINITY;
        }
    }
}

// Online softmax in the log2 domain (scale > 0, so the raw maximum scales to the scaled one): the new running
// max, the factor alpha that rescales the earlier sum and output, P = exp2(S * scale * log2 e - max) in one FFMA
// + EX2 per score, and the running sum of this thread's share of each row.
__device__ __forceinline__ void online_softmax(float (&s)[kBlockK / 2], float (&row_max)[2], float (&row_sum)[2],
                                               float (&alpha)[2], float scale_log2) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < kBlockK / 8; ++c) mx = fmaxf(mx, fmaxf(s[4 * c + 2 * r], s[4 * c + 2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m = fmaxf(row_max[r], mx * scale_log2);
        const float m_use = m == -INFINITY ? 0.f : m;  // a row with every key masked so far
        alpha[r] = fast_exp2(row_max[r] - m_use);
        row_max[r] = m;
        float sum = 0.f;
#pragma unroll
        for (int c = 0; c < kBlockK / 8; ++c) {
            s[4 * c + 2 * r] = fast_exp2(fmaf(s[4 * c + 2 * r], scale_log2, -m_use));
            s[4 * c + 2 * r + 1] = fast_exp2(fmaf(s[4 * c + 2 * r + 1], scale_log2, -m_use));
            sum += s[4 * c + 2 * r] + s[4 * c + 2 * r + 1];
        }
        row_sum[r] = row_sum[r] * alpha[r] + sum;
    }
}

// O += P V: V's 16 rows of step kk are two 8-row groups (1024 bytes apart), its head-dim panels kPanelBytes apart.
template <int kHeadDim>
__device__ __forceinline__ void accumulate_pv(float (&acc)[kHeadDim / 2], const uint32_t (&p)[kBlockK / 16][4],
                                              uint32_t v_addr) {
#pragma unroll
    for (int kk = 0; kk < kBlockK / 16; ++kk) {
        const uint64_t desc = wgmma::desc_sw128(v_addr + kk * 2048, kPanelBytes, 1024);
        if constexpr (kHeadDim == 128) {
            wgmma::wgmma_m64n128k16_rs(acc, p[kk], desc);
        } else {
            wgmma::wgmma_m64n64k16_rs(acc, p[kk], desc);
        }
    }
}

template <int kHeadDim, bool kCausal>
__global__ void __launch_bounds__(kFwdThreads, 1)
    attention_fwd_kernel(const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap k_map,
                         const __grid_constant__ CUtensorMap v_map, bf16* __restrict__ o, float* __restrict__ lse,
                         int batch, int seq, int heads, int kv_heads, float scale_log2) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    unsigned char* s_q = smem_raw + ((1024 - (tma::smem_addr(smem_raw) & 1023)) & 1023);
    unsigned char* s_k = s_q + fwd_tile_bytes<kHeadDim>();            // kStages stages
    unsigned char* s_v = s_k + kStages * fwd_tile_bytes<kHeadDim>();  // kStages stages
    auto* bars = reinterpret_cast<FwdBarriers*>(s_v + kStages * fwd_tile_bytes<kHeadDim>());
    const auto k_stage = [&](int j) { return s_k + (j % kStages) * fwd_tile_bytes<kHeadDim>(); };
    const auto v_stage = [&](int j) { return s_v + (j % kStages) * fwd_tile_bytes<kHeadDim>(); };
    const auto phase = [](int j) { return static_cast<uint32_t>(j / kStages) & 1u; };

    const int q_blocks = (seq + kBlockQ - 1) / kBlockQ;
    const int bh_count = batch * heads;
    const int q_block = q_blocks - 1 - static_cast<int>(blockIdx.x / bh_count);
    const int bh = static_cast<int>(blockIdx.x % bh_count);
    const int b = bh / heads, h = bh % heads;
    const int hk = h / (heads / kv_heads);
    const int q0 = q_block * kBlockQ;
    const int key_end = kCausal ? min(seq, q0 + kBlockQ) : seq;
    const int k_blocks = (key_end + kBlockK - 1) / kBlockK;
    constexpr int kConsumerWarps = kFwdWarpGroups * 4;

    if (threadIdx.x == 0) {
        tma::barrier_init(&bars->q_full, 1);
#pragma unroll
        for (int i = 0; i < kStages; ++i) {
            tma::barrier_init(&bars->k_full[i], 1);
            tma::barrier_init(&bars->v_full[i], 1);
            tma::barrier_init(&bars->k_empty[i], kConsumerWarps);
            tma::barrier_init(&bars->v_empty[i], kConsumerWarps);
        }
        tma::fence_barrier_init();
    }
    __syncthreads();

    const int warp_id = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (warp_id >= kConsumerWarps) {
        // Producer: Q, then K_j and V_j in order, each into its stage once every consumer warp has released it.
        wgmma::set_max_registers_dec<kProducerRegisters>();
        if (warp_id == kConsumerWarps && lane == 0) {
            load_fwd_tile<kHeadDim>(s_q, &q_map, &bars->q_full, b * heads + h, q0);
            const int kv_head = b * kv_heads + hk;
            for (int j = 0; j < k_blocks; ++j) {
                if (j >= kStages) tma::wait(&bars->k_empty[j % kStages], phase(j) ^ 1u);
                load_fwd_tile<kHeadDim>(k_stage(j), &k_map, &bars->k_full[j % kStages], kv_head, j * kBlockK);
                if (j >= kStages) tma::wait(&bars->v_empty[j % kStages], phase(j) ^ 1u);
                load_fwd_tile<kHeadDim>(v_stage(j), &v_map, &bars->v_full[j % kStages], kv_head, j * kBlockK);
            }
        }
        return;
    }

    wgmma::set_max_registers_inc<kConsumerRegisters>();
    const int wg = threadIdx.x / 128;
    const int warp = warp_id % 4;
    const int g = lane / 4, t = lane % 4;
    const int wg_row0 = q0 + wg * 64;
    const int row0 = wg_row0 + warp * 16 + g;  // this thread's rows: row0 (r = 0) and row0 + 8 (r = 1)
    const uint32_t q_addr = tma::smem_addr(s_q) + wg * 64 * 128;
    const auto release = [&](uint64_t* bar) {
        if (lane == 0) tma::arrive(bar);
    };

    float acc[kHeadDim / 2];
#pragma unroll
    for (int i = 0; i < kHeadDim / 2; ++i) acc[i] = 0.f;
    float s[kBlockK / 2];         // scores of one key tile, then its probabilities
    uint32_t p[kBlockK / 16][4];  // the probabilities as bf16 A fragments of P V
    float row_max[2] = {-INFINITY, -INFINITY};
    float row_sum[2] = {0.f, 0.f};  // this thread's share; the quad is summed at the end
    float alpha[2];

    // The two warpgroups take turns issuing their tensor-core work (named barriers 1 and 2): one's softmax runs
    // under the other's GEMMs. Warpgroup 1 lets warpgroup 0 go first.
    const auto my_turn = [&] { asm volatile("bar.sync %0, 256;\n" ::"r"(1 + wg) : "memory"); };
    const auto their_turn = [&] { asm volatile("bar.arrive %0, 256;\n" ::"r"(2 - wg) : "memory"); };
    if (wg == 1 && k_blocks > 1) their_turn();

    tma::wait(&bars->q_full, 0);
    tma::wait(&bars->k_full[0], 0);
    wgmma::fence();
    qk_scores<kHeadDim>(s, q_addr, tma::smem_addr(k_stage(0)));
    wgmma::commit();
    wgmma::wait<0>();
    release(&bars->k_empty[0]);
    mask_scores<kCausal>(s, 0, seq, wg_row0, row0, t);
    online_softmax(s, row_max, row_sum, alpha, scale_log2);

    // Step j: S_j = Q K_j^T and O += P_{j-1} V_{j-1} run on the tensor cores while the softmax of S_j waits only
    // for the first; O is rescaled once the second is done.
    for (int j = 1; j < k_blocks; ++j) {
        tma::wait(&bars->k_full[j % kStages], phase(j));
        tma::wait(&bars->v_full[(j - 1) % kStages], phase(j - 1));
        pack_a_fragments<kBlockK / 16>(p, s);
        my_turn();
        wgmma::fence();
        qk_scores<kHeadDim>(s, q_addr, tma::smem_addr(k_stage(j)));
        wgmma::commit();
        accumulate_pv<kHeadDim>(acc, p, tma::smem_addr(v_stage(j - 1)));
        wgmma::commit();
        if (wg == 0 || j + 1 < k_blocks) their_turn();  // every turn given is taken
        wgmma::wait<1>();
        release(&bars->k_empty[j % kStages]);
        mask_scores<kCausal>(s, j * kBlockK, seq, wg_row0, row0, t);
        online_softmax(s, row_max, row_sum, alpha, scale_log2);
        wgmma::wait<0>();
        release(&bars->v_empty[(j - 1) % kStages]);
#pragma unroll
        for (int c = 0; c < kHeadDim / 8; ++c) {
            acc[4 * c] *= alpha[0];
            acc[4 * c + 1] *= alpha[0];
            acc[4 * c + 2] *= alpha[1];
            acc[4 * c + 3] *= alpha[1];
        }
    }
    tma::wait(&bars->v_full[(k_blocks - 1) % kStages], phase(k_blocks - 1));
    pack_a_fragments<kBlockK / 16>(p, s);
    wgmma::fence();
    accumulate_pv<kHeadDim>(acc, p, tma::smem_addr(v_stage(k_blocks - 1)));
    wgmma::commit();
    wgmma::wait<0>();

    // Normalise; write lse and O (each quad writes 16 contiguous bytes per 8 columns).
    const int64_t q_stride = static_cast<int64_t>(batch) * heads * kHeadDim;
    bf16* o_base = o + (static_cast<int64_t>(b) * heads + h) * kHeadDim;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float l = row_sum[r];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const float inv = l > 0.f ? 1.f / l : 0.f;
        const int row = row0 + 8 * r;
        if (row < seq) {
            if (t == 0) lse[static_cast<int64_t>(bh) * seq + row] = row_max[r] * kLn2 + logf(l);
            bf16* out = o_base + row * q_stride + 2 * t;
#pragma unroll
            for (int c = 0; c < kHeadDim / 8; ++c) {
                *reinterpret_cast<uint32_t*>(out + 8 * c) =
                    pack_bf16(acc[4 * c + 2 * r] * inv, acc[4 * c + 2 * r + 1] * inv);
            }
        }
    }
#else
    __trap();  // built without sm_90a: the launcher refuses such devices before reaching here
#endif
}

template <int kHeadDim, bool kCausal>
int launch_fwd(bf16* o, float* lse, const bf16* q, const bf16* k, const bf16* v, int batch, int seq, int heads,
               int kv_heads, float scale, cudaStream_t stream) {
    CUtensorMap q_map, k_map, v_map;
    MP_TRY(encode_tile_map(&q_map, q, seq, static_cast<int64_t>(batch) * heads, kHeadDim, kTileRows, "mp_attention_fwd (q)"));
    MP_TRY(encode_tile_map(&k_map, k, seq, static_cast<int64_t>(batch) * kv_heads, kHeadDim, kTileRows, "mp_attention_fwd (k)"));
    MP_TRY(encode_tile_map(&v_map, v, seq, static_cast<int64_t>(batch) * kv_heads, kHeadDim, kTileRows, "mp_attention_fwd (v)"));
    const auto kernel = attention_fwd_kernel<kHeadDim, kCausal>;
    constexpr size_t smem = fwd_smem_bytes<kHeadDim>();
    MP_TRY(allow_dynamic_smem(kernel, smem, "mp_attention_fwd"));
    const int64_t blocks = static_cast<int64_t>((seq + kBlockQ - 1) / kBlockQ) * batch * heads;
    if (blocks > INT32_MAX)
        MP_FAIL(MP_ERR_UNSUPPORTED, "mp_attention_fwd: %lld blocks exceed the grid limit",
                static_cast<long long>(blocks));
    kernel<<<static_cast<unsigned>(blocks), kFwdThreads, smem, stream>>>(q_map, k_map, v_map, o, lse, batch, seq, heads,
                                                                         kv_heads, scale * kLog2e);
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
    MP_REQUIRE(scale > 0.f && scale <= 3.4e38f, "mp_attention_fwd: scale %g is not a positive finite number",
               static_cast<double>(scale));
    MP_TRY(require_hopper("mp_attention_fwd"));
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
