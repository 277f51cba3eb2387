// Flash attention backward for Hopper (sm_90a): bf16 in/out, fp32 accumulation with warpgroup MMA (wgmma), tiles
// loaded by TMA, dQ added to its accumulator by TMA bulk reductions.
//
// 1. preprocess: D = rowsum(dO * O) and lse * log2 e per query row, in the workspace, padded to whole query blocks
//    (D = 0 and lse = +inf past the end, so that those rows get P = 0 without a mask); the float32 dQ, dK and dV
//    accumulators are cleared in the same pass.
// 2. main: one block owns kBlockN = 128 keys of one (batch, query head): two consumer warpgroups of 64 keys each
//    and a producer warpgroup. K and V are loaded once; the producer's first warp streams Q, dO, lse and D of each
//    query block (kBlockM = 64 rows) through two stages guarded by mbarriers. Per query block, each consumer
//    warpgroup computes for its 64 keys:
//      S^T = K Q^T, dP^T = V dO^T        wgmma m64n64k16, both operands from shared memory;
//      P^T = exp2(S^T scale log2 e - lse log2 e), dS^T = P^T (dP^T - D), in registers;
//      dV += P^T dO, dK += dS^T Q        wgmma with P^T / dS^T as the register A operand, dO / Q read MN-major;
//    then both warpgroups store dS^T to shared memory and compute dQ = dS K for the query block, each for half the
//    head dimension, and stage it in shared memory; the producer's second warp adds each staged half to the dQ
//    accumulator with one bulk reduction (cp.reduce.async.bulk .add.f32). At the end dK and dV are added to their
//    accumulators with 16-byte vector reductions (the query heads of a GQA group share them).
// 3. dQ = scale * accumulator (read back from its staged order), dK = scale * accumulator, dV = accumulator, in
//    bf16.
#include <algorithm>

#include "attention_common.cuh"
#include "pointwise.cuh"
#include "wgmma.cuh"

namespace mp {
namespace attention {

constexpr int kBwdWarpGroups = 2;                        // consumers
constexpr int kBwdThreads = (kBwdWarpGroups + 1) * 128;  // + the producer warpgroup
constexpr int kBwdProducerRegisters = 24;
constexpr int kBwdConsumerRegisters = 240;
constexpr int kBlockN = kBwdWarpGroups * 64;  // keys per block
constexpr int kBlockM = 64;                   // query rows per step
constexpr int kBwdStages = 2;

struct BwdBarriers {
    uint64_t kv_full;
    uint64_t q_full[kBwdStages], do_full[kBwdStages], empty[kBwdStages];
    uint64_t dq_full[2][kBwdWarpGroups], dq_empty[2][kBwdWarpGroups];
};

// dS^T buffers are [kBlockN][kBlockM] bf16: one 128-byte-swizzled panel each.
constexpr uint32_t kDsBytes = panel_bytes<kBlockN>();
static_assert(kBlockM * sizeof(bf16) == 128, "a dS^T row is one swizzled 128-byte row");
constexpr uint32_t kRowStatsBytes = kBlockM * sizeof(float);

// A warpgroup's dQ part: kBlockM rows x head_dim / 2 columns of float32.
template <int kHeadDim>
constexpr uint32_t dq_part_floats() {
    return kBlockM * kHeadDim / 2;
}

// K, V (kBlockN rows), kBwdStages x (Q, dO: kBlockM rows; lse, D: kBlockM floats), two dS^T buffers, two dQ
// staging buffers of a part per consumer warpgroup, the barriers, and slack to align to the 1024-byte atom.
template <int kHeadDim>
constexpr size_t bwd_smem_bytes() {
    return 2 * static_cast<size_t>(tile_bytes<kBlockN, kHeadDim>()) +
           kBwdStages * (2 * static_cast<size_t>(tile_bytes<kBlockM, kHeadDim>()) + 2 * kRowStatsBytes) +
           2 * kDsBytes + 2 * kBwdWarpGroups * dq_part_floats<kHeadDim>() * sizeof(float) + sizeof(BwdBarriers) +
           1024;
}

// Workspace: the float32 dQ accumulator in staged order ([batch * heads][query block][warpgroup][part], see
// staged_dq_index), the float32 dK and dV accumulators [seq][batch * kv_heads][head_dim], then D and lse * log2 e,
// each [batch * heads][seq rounded up to kBlockM].
struct BwdWorkspace {
    size_t dq_offset, dk_offset, dv_offset, dsum_offset, lse_offset, total_bytes;
    int64_t seq_padded;
};

inline size_t round_up_256(size_t bytes) { return (bytes + 255) / 256 * 256; }

inline BwdWorkspace bwd_workspace(int batch, int seq, int heads, int kv_heads, int head_dim) {
    BwdWorkspace w{};
    w.seq_padded = (static_cast<int64_t>(seq) + kBlockM - 1) / kBlockM * kBlockM;
    const size_t q_bytes = static_cast<size_t>(w.seq_padded) * batch * heads * head_dim * sizeof(float);
    const size_t kv_bytes = static_cast<size_t>(seq) * batch * kv_heads * head_dim * sizeof(float);
    const size_t stats_bytes = static_cast<size_t>(w.seq_padded) * batch * heads * sizeof(float);
    w.dq_offset = 0;
    w.dk_offset = round_up_256(q_bytes);
    w.dv_offset = w.dk_offset + round_up_256(kv_bytes);
    w.dsum_offset = w.dv_offset + round_up_256(kv_bytes);
    w.lse_offset = w.dsum_offset + round_up_256(stats_bytes);
    w.total_bytes = w.lse_offset + round_up_256(stats_bytes);
    return w;
}

// Staged order of a warpgroup's dQ part: thread `tid` of the warpgroup stores its accumulator float4 j (columns
// 8j + 2t, +1 of rows g and g + 8 of its warp's 16) at float4 index j * 128 + tid, so that a warp's stores are
// consecutive 16-byte chunks. The index of (row, column) of the part:
__host__ __device__ __forceinline__ int64_t staged_dq_index(int row, int column) {
    const int warp = row / 16, g = row % 8, upper = (row % 16) / 8;
    const int j = column / 8, t = (column % 8) / 2;
    const int tid = warp * 32 + g * 4 + t;
    return (static_cast<int64_t>(j) * 128 + tid) * 4 + upper * 2 + column % 2;
}

// kHeadDim / 8 lanes per padded query row (bh, s), 16 bytes of dO and of O each: D = sum_d dO[s, bh, d] O[s, bh, d]
// and lse * log2 e, past the end D = 0 and lse = +inf; and the accumulators cleared: the row's head_dim floats of
// the dQ accumulator and, for the first seq * batch * kv_heads rows, of the dK and dV accumulators.
template <int kHeadDim>
__global__ void attention_bwd_preprocess_kernel(float* __restrict__ dsum, float* __restrict__ lse_log2,
                                                float* __restrict__ dq_acc, float* __restrict__ dk_acc,
                                                float* __restrict__ dv_acc, const bf16* __restrict__ dout,
                                                const bf16* __restrict__ o, const float* __restrict__ lse,
                                                int64_t bh_count, int seq, int64_t seq_padded, int64_t kv_rows) {
    constexpr int kLanes = kHeadDim / 8;
    constexpr int kZeros = kHeadDim / 4 / kLanes;  // float4s of an accumulator row per lane
    const int64_t rows = bh_count * seq_padded;
    const int lane = threadIdx.x % kLanes;
    const int64_t groups = static_cast<int64_t>(gridDim.x) * blockDim.x / kLanes;
    const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kLanes; row < rows;
         row += groups) {
        const int64_t bh = row / seq_padded, s = row % seq_padded;
#pragma unroll
        for (int z = 0; z < kZeros; ++z) {
            const int64_t at = row * (kHeadDim / 4) + z * kLanes + lane;
            reinterpret_cast<float4*>(dq_acc)[at] = zero;
            if (row < kv_rows) {
                reinterpret_cast<float4*>(dk_acc)[at] = zero;
                reinterpret_cast<float4*>(dv_acc)[at] = zero;
            }
        }
        float sum = 0.f;
        if (s < seq) {
            const int64_t element = (s * bh_count + bh) * kHeadDim + lane * 8;
            const Vec<bf16, 8> a = load_vec<8>(dout + element);
            const Vec<bf16, 8> c = load_vec<8>(o + element);
#pragma unroll
            for (int i = 0; i < 8; ++i) sum += __bfloat162float(a.v[i]) * __bfloat162float(c.v[i]);
        }
        // rows is a multiple of kBlockM, so a warp's rows are all in range or all past it: the full-warp shuffle holds.
#pragma unroll
        for (int offset = kLanes / 2; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
        if (lane == 0) {
            dsum[row] = sum;
            lse_log2[row] = s < seq ? lse[bh * seq + s] * kLog2e : INFINITY;
        }
    }
}

// Adds row r (0: row g, 1: row g + 8) of a warpgroup accumulator fragment with kTiles column tiles of 8 to
// row[0, 8 kTiles) with 16-byte vector reductions. In tile c a lane holds columns 8c + 2t, +1; for each pair of
// tiles (2p, 2p + 1) lanes t and t ^ 1 swap one column pair, so that an even lane holds columns 16p + 2t + [0, 4)
// and an odd lane 16p + 8 + 2(t - 1) + [0, 4): 4 consecutive, 16-byte aligned floats. Every lane of the warp calls
// it (the swap is a shuffle); `valid` says whether this lane's row exists.
template <int kTiles>
__device__ __forceinline__ void reduce_add_row(float* row, const float* acc, int r, int t, bool valid) {
    const bool odd = t & 1;
    float* dst = row + (odd ? 8 : 0) + (t & 2) * 2;
#pragma unroll
    for (int p = 0; p < kTiles / 2; ++p) {
        const float* lo = acc + 8 * p + 2 * r;
        const float* hi = acc + 8 * p + 4 + 2 * r;
        const float x = __shfl_xor_sync(0xffffffffu, odd ? lo[0] : hi[0], 1);
        const float y = __shfl_xor_sync(0xffffffffu, odd ? lo[1] : hi[1], 1);
        if (valid) {
            atomicAdd(reinterpret_cast<float4*>(dst + 16 * p),
                      odd ? make_float4(x, y, hi[0], hi[1]) : make_float4(lo[0], lo[1], x, y));
        }
    }
}

// X^T = A B^T for this warpgroup's 64 rows of A (K or V: kBlockN-row tile) and the kBlockM rows of B (Q or dO):
// 16 head-dim columns (32 bytes of the swizzled rows) per instruction, the head-dim panels of each tile apart.
template <int kHeadDim>
__device__ __forceinline__ void transposed_scores(float (&x)[kBlockM / 2], uint32_t a_addr, uint32_t b_addr) {
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
        const uint32_t column = (kk % 4) * 32;
        wgmma::wgmma_m64n64k16_ss(x, wgmma::desc_sw128(a_addr + (kk / 4) * panel_bytes<kBlockN>() + column, 16, 1024),
                                  wgmma::desc_sw128(b_addr + (kk / 4) * panel_bytes<kBlockM>() + column, 16, 1024),
                                  kk > 0);
    }
}

// acc[64 x head_dim] += A B with A = P^T or dS^T (registers, k-steps over the kBlockM queries) and B = dO or Q
// read MN-major: 16 query rows (two 8-row groups, 1024 bytes apart) per step, head-dim panels apart.
template <int kHeadDim>
__device__ __forceinline__ void accumulate_key_gradient(float (&acc)[kHeadDim / 2],
                                                        const uint32_t (&a)[kBlockM / 16][4], uint32_t b_addr) {
#pragma unroll
    for (int kk = 0; kk < kBlockM / 16; ++kk) {
        const uint64_t desc = wgmma::desc_sw128(b_addr + kk * 2048, panel_bytes<kBlockM>(), 1024);
        if constexpr (kHeadDim == 128) {
            wgmma::wgmma_m64n128k16_rs(acc, a[kk], desc);
        } else {
            wgmma::wgmma_m64n64k16_rs(acc, a[kk], desc);
        }
    }
}

// dQ[kBlockM x head_dim / 2] = dS K for the head-dim half `half`: A = dS read from dS^T (MN-major: queries
// contiguous), B = K read MN-major; 16 keys (2048 bytes of either) per step. For head_dim 64 the half starts 64
// bytes into the swizzled rows (the swizzle follows the address bits, so the offset carries through).
template <int kHeadDim>
__device__ __forceinline__ void query_gradient(float (&dq)[kHeadDim / 4], uint32_t ds_addr, uint32_t k_addr,
                                               int half) {
    const uint32_t k_half = kHeadDim == 128 ? half * panel_bytes<kBlockN>() : half * 64;
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
        const uint64_t a = wgmma::desc_sw128(ds_addr + kk * 2048, kDsBytes, 1024);
        const uint64_t b = wgmma::desc_sw128(k_addr + k_half + kk * 2048, panel_bytes<kBlockN>(), 1024);
        if constexpr (kHeadDim == 128) {
            wgmma::wgmma_m64n64k16_ss<1, 1>(dq, a, b, kk > 0);
        } else {
            wgmma::wgmma_m64n32k16_ss<1, 1>(dq, a, b, kk > 0);
        }
    }
}

template <int kHeadDim, bool kCausal>
__global__ void __launch_bounds__(kBwdThreads, 1)
    attention_bwd_kernel(const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap k_map,
                         const __grid_constant__ CUtensorMap v_map, const __grid_constant__ CUtensorMap do_map,
                         float* __restrict__ dq_acc, float* __restrict__ dk_acc, float* __restrict__ dv_acc,
                         const float* __restrict__ lse_log2, const float* __restrict__ dsum, int batch, int seq,
                         int heads, int kv_heads, int64_t seq_padded, int heads_per_group, float scale_log2) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr uint32_t kKvTile = tile_bytes<kBlockN, kHeadDim>();
    constexpr uint32_t kQTile = tile_bytes<kBlockM, kHeadDim>();
    constexpr uint32_t kDqPart = dq_part_floats<kHeadDim>();
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    unsigned char* s_k = smem_raw + ((1024 - (tma::smem_addr(smem_raw) & 1023)) & 1023);
    unsigned char* s_v = s_k + kKvTile;
    unsigned char* s_q = s_v + kKvTile;                      // kBwdStages stages
    unsigned char* s_do = s_q + kBwdStages * kQTile;         // kBwdStages stages
    unsigned char* s_ds = s_do + kBwdStages * kQTile;        // two buffers
    auto* s_dq = reinterpret_cast<float*>(s_ds + 2 * kDsBytes);  // [2][kBwdWarpGroups][kDqPart]
    float* s_lse = s_dq + 2 * kBwdWarpGroups * kDqPart;          // [kBwdStages][kBlockM]
    float* s_dsum = s_lse + kBwdStages * kBlockM;                // [kBwdStages][kBlockM]
    auto* bars = reinterpret_cast<BwdBarriers*>(s_dsum + kBwdStages * kBlockM);
    const auto phase = [](int i) { return static_cast<uint32_t>(i / kBwdStages) & 1u; };

    // Blocks run in groups of heads_per_group (batch, head) pairs, whose dQ accumulators stay in L2 while the group
    // runs; inside a group the heaviest key blocks come first (for causal, the first key blocks meet the most
    // queries).
    const int bh_count = batch * heads;
    const int k_blocks = (seq + kBlockN - 1) / kBlockN;
    const int group = static_cast<int>(blockIdx.x / (heads_per_group * k_blocks));
    const int in_group = static_cast<int>(blockIdx.x % (heads_per_group * k_blocks));
    const int group_size = min(heads_per_group, bh_count - group * heads_per_group);
    const int k_block = in_group / group_size;
    const int bh = group * heads_per_group + in_group % group_size;
    const int b = bh / heads, h = bh % heads;
    const int kv_head = b * kv_heads + h / (heads / kv_heads);
    const int k0 = k_block * kBlockN;
    const int q_begin = kCausal ? k0 / kBlockM : 0;  // earlier query blocks see none of these keys
    const int iterations = static_cast<int>(seq_padded / kBlockM) - q_begin;
    constexpr int kConsumerWarps = kBwdWarpGroups * 4;

    if (threadIdx.x == 0) {
        tma::barrier_init(&bars->kv_full, 1);
#pragma unroll
        for (int i = 0; i < kBwdStages; ++i) {
            tma::barrier_init(&bars->q_full[i], 1);
            tma::barrier_init(&bars->do_full[i], 1);
            tma::barrier_init(&bars->empty[i], kBwdWarpGroups * 128);
        }
#pragma unroll
        for (int w = 0; w < 2 * kBwdWarpGroups; ++w) {
            tma::barrier_init(&bars->dq_full[w / kBwdWarpGroups][w % kBwdWarpGroups], 128);
            tma::barrier_init(&bars->dq_empty[w / kBwdWarpGroups][w % kBwdWarpGroups], 1);
        }
        tma::fence_barrier_init();
    }
    __syncthreads();

    const int warp_id = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (warp_id >= kConsumerWarps) {
        wgmma::set_max_registers_dec<kBwdProducerRegisters>();
        if (warp_id == kConsumerWarps && lane == 0) {
            // Loader: K and V, then Q with lse and dO with D of each query block into its stage once every
            // consumer warp has released it.
            tma::arrive_expect_bytes(&bars->kv_full, 2 * kKvTile);
            tma_load_tile<kBlockN, kHeadDim>(s_k, &k_map, &bars->kv_full, kv_head, k0);
            tma_load_tile<kBlockN, kHeadDim>(s_v, &v_map, &bars->kv_full, kv_head, k0);
            const float* lse_row = lse_log2 + bh * seq_padded;
            const float* dsum_row = dsum + bh * seq_padded;
            for (int i = 0; i < iterations; ++i) {
                const int stage = i % kBwdStages;
                const int q0 = (q_begin + i) * kBlockM;
                if (i >= kBwdStages) tma::wait(&bars->empty[stage], phase(i) ^ 1u);
                tma::arrive_expect_bytes(&bars->q_full[stage], kQTile + kRowStatsBytes);
                tma_load_tile<kBlockM, kHeadDim>(s_q + stage * kQTile, &q_map, &bars->q_full[stage], bh, q0);
                tma::load_1d(s_lse + stage * kBlockM, lse_row + q0, kRowStatsBytes, &bars->q_full[stage]);
                tma::arrive_expect_bytes(&bars->do_full[stage], kQTile + kRowStatsBytes);
                tma_load_tile<kBlockM, kHeadDim>(s_do + stage * kQTile, &do_map, &bars->do_full[stage], bh, q0);
                tma::load_1d(s_dsum + stage * kBlockM, dsum_row + q0, kRowStatsBytes, &bars->do_full[stage]);
            }
        } else if (warp_id == kConsumerWarps + 1 && lane == 0) {
            // dQ writer: adds each staged part to the accumulator; a staging buffer goes back to its warpgroup once
            // the reduction has read it, while the next query block's reductions run.
            float* dq_head = dq_acc + static_cast<int64_t>(bh) * seq_padded * kHeadDim;
            for (int i = 0; i < iterations; ++i) {
                const int buffer = i & 1;
                float* dq_block = dq_head + static_cast<int64_t>(q_begin + i) * kBlockM * kHeadDim;
#pragma unroll
                for (int w = 0; w < kBwdWarpGroups; ++w) {
                    tma::wait(&bars->dq_full[buffer][w], static_cast<uint32_t>(i >> 1) & 1u);
                    tma::reduce_add_1d(dq_block + w * kDqPart, s_dq + (buffer * kBwdWarpGroups + w) * kDqPart,
                                       kDqPart * sizeof(float));
                    tma::bulk_commit();
                }
                tma::bulk_wait_read<kBwdWarpGroups>();  // the previous query block's parts have been read
                if (i > 0) {
#pragma unroll
                    for (int w = 0; w < kBwdWarpGroups; ++w) tma::arrive(&bars->dq_empty[buffer ^ 1][w]);
                }
            }
            tma::bulk_wait_all();
        }
        return;
    }

    wgmma::set_max_registers_inc<kBwdConsumerRegisters>();
    const int wg = threadIdx.x / 128;
    const int warp = warp_id % 4;
    const int t = lane % 4;
    const int wg_key0 = k0 + wg * 64;
    const int key_row = warp * 16 + lane / 4;  // this thread's keys in the warpgroup: key_row (r = 0) and + 8
    const uint32_t k_addr = tma::smem_addr(s_k), v_addr = tma::smem_addr(s_v);
    const uint32_t wg_rows = wg * 64 * 128;  // this warpgroup's 64 keys inside each K / V panel
    const auto dq_stage = [&](int buffer) {
        return reinterpret_cast<float4*>(s_dq + (buffer * kBwdWarpGroups + wg) * kDqPart) + threadIdx.x % 128;
    };

    float dk[kHeadDim / 2], dv[kHeadDim / 2];
#pragma unroll
    for (int i = 0; i < kHeadDim / 2; ++i) dk[i] = dv[i] = 0.f;
    float s[kBlockM / 2], dp[kBlockM / 2];  // S^T then P^T; dP^T then dS^T
    uint32_t pa[kBlockM / 16][4], dsa[kBlockM / 16][4];
    float dq[kHeadDim / 4];

    tma::wait(&bars->kv_full, 0);
    for (int i = 0; i < iterations; ++i) {
        const int stage = i % kBwdStages;
        const int q0 = (q_begin + i) * kBlockM;
        const uint32_t q_addr = tma::smem_addr(s_q + stage * kQTile);
        const uint32_t do_addr = tma::smem_addr(s_do + stage * kQTile);
        unsigned char* ds_tile = s_ds + (i & 1) * kDsBytes;
        const float* lse_s = s_lse + stage * kBlockM;
        const float* dsum_s = s_dsum + stage * kBlockM;

        tma::wait(&bars->q_full[stage], phase(i));
        wgmma::fence();
        transposed_scores<kHeadDim>(s, k_addr + wg_rows, q_addr);
        wgmma::commit();
        tma::wait(&bars->do_full[stage], phase(i));
        transposed_scores<kHeadDim>(dp, v_addr + wg_rows, do_addr);
        wgmma::commit();
        wgmma::wait<1>();

        // P^T: the thread's columns are queries q0 + 8c + 2t + {0, 1}; causal keys after the query get 0 (only
        // blocks on the diagonal need the test); queries past the end have lse = +inf and get 0 anyway.
        const bool diagonal = kCausal && wg_key0 + 63 > q0;
#pragma unroll
        for (int c = 0; c < kBlockM / 8; ++c) {
            const float2 l = *reinterpret_cast<const float2*>(lse_s + 8 * c + 2 * t);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                float p = fast_exp2(fmaf(s[4 * c + e], scale_log2, -((e & 1) ? l.y : l.x)));
                if (diagonal && wg_key0 + key_row + (e < 2 ? 0 : 8) > q0 + 8 * c + 2 * t + (e & 1)) p = 0.f;
                s[4 * c + e] = p;
            }
        }
        pack_a_fragments<kBlockM / 16>(pa, s);
        wgmma::fence();
        accumulate_key_gradient<kHeadDim>(dv, pa, do_addr);
        wgmma::commit();
        wgmma::wait<1>();

        // dS^T = P^T (dP^T - D).
#pragma unroll
        for (int c = 0; c < kBlockM / 8; ++c) {
            const float2 d = *reinterpret_cast<const float2*>(dsum_s + 8 * c + 2 * t);
#pragma unroll
            for (int e = 0; e < 4; ++e) dp[4 * c + e] = s[4 * c + e] * (dp[4 * c + e] - ((e & 1) ? d.y : d.x));
        }
        pack_a_fragments<kBlockM / 16>(dsa, dp);
        wgmma::fence();
        accumulate_key_gradient<kHeadDim>(dk, dsa, q_addr);
        wgmma::commit();

        // dS^T to shared memory (row = key, 128-byte rows of 64 queries, swizzled); both warpgroups' halves are
        // needed before either computes dQ. The buffer alternates: the one written here was last read two query
        // blocks ago, by dQ products both warpgroups finished before the previous barrier.
#pragma unroll
        for (int c = 0; c < kBlockM / 8; ++c) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int row = wg * 64 + key_row + 8 * r;
                *reinterpret_cast<uint32_t*>(ds_tile + row * 128 + ((c ^ (row & 7)) << 4) + 4 * t) =
                    dsa[c / 2][(c & 1) * 2 + r];
            }
        }
        wgmma::fence_shared_stores();
        asm volatile("bar.sync 1, %0;\n" ::"n"(kBwdWarpGroups * 128) : "memory");

        wgmma::fence();
        query_gradient<kHeadDim>(dq, tma::smem_addr(ds_tile), k_addr, wg);
        wgmma::commit();
        wgmma::wait<0>();
        tma::arrive(&bars->empty[stage]);  // every consumer thread: each has read lse and D of the stage

        // Stage this warpgroup's dQ part (staged_dq_index order) for the writer, in the buffer it used two query
        // blocks ago once the writer has handed that back.
        const int buffer = i & 1;
        if (i >= 2) tma::wait(&bars->dq_empty[buffer][wg], static_cast<uint32_t>((i >> 1) - 1) & 1u);
        float4* stage_out = dq_stage(buffer);
#pragma unroll
        for (int j = 0; j < kHeadDim / 16; ++j)
            stage_out[j * 128] = make_float4(dq[4 * j], dq[4 * j + 1], dq[4 * j + 2], dq[4 * j + 3]);
        wgmma::fence_shared_stores();
        tma::arrive(&bars->dq_full[buffer][wg]);
    }

    // dK and dV of this warpgroup's keys inside the sequence.
    const int64_t kv_stride = static_cast<int64_t>(batch) * kv_heads * kHeadDim;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int key = wg_key0 + key_row + 8 * r;
        const int64_t offset = key * kv_stride + static_cast<int64_t>(kv_head) * kHeadDim;
        reduce_add_row<kHeadDim / 8>(dk_acc + offset, dk, r, t, key < seq);
        reduce_add_row<kHeadDim / 8>(dv_acc + offset, dv, r, t, key < seq);
    }
#else
    __trap();  // built without sm_90a: the launcher refuses such devices before reaching here
#endif
}

// dq[s][bh] = bf16(scale * accumulator) for one query block per step of the grid-stride loop: the staged
// accumulator is read in order (16-byte loads), put back in row order in shared memory, and written as 16-byte rows
// of 8 bf16.
constexpr int kDqConvertThreads = 256;

template <int kHeadDim>
__global__ void __launch_bounds__(kDqConvertThreads)
    attention_dq_convert_kernel(bf16* __restrict__ dq, const float* __restrict__ acc, int64_t bh_count, int seq,
                                int64_t seq_padded, float scale) {
    constexpr int kPitch = kHeadDim + 4;  // floats per row in shared memory: keeps rows 16-byte aligned
    constexpr int kPartFloat4s = dq_part_floats<kHeadDim>() / 4;
    __shared__ __align__(16) float tile[kBlockM * kPitch];
    const int64_t q_blocks = seq_padded / kBlockM;
    for (int64_t block = blockIdx.x; block < bh_count * q_blocks; block += gridDim.x) {
        const int64_t bh = block / q_blocks, s0 = block % q_blocks * kBlockM;
        const float4* staged = reinterpret_cast<const float4*>(acc + (bh * seq_padded + s0) * kHeadDim);
        for (int f = threadIdx.x; f < kBwdWarpGroups * kPartFloat4s; f += kDqConvertThreads) {
            // float4 f of part w = (j, tid): rows 16 warp + g and + 8, part columns 8j + 2t, +1 (see
            // staged_dq_index).
            const int w = f / kPartFloat4s, j = f % kPartFloat4s / 128, tid = f % 128;
            const int row = tid / 32 * 16 + tid % 32 / 4;
            const int column = w * (kHeadDim / kBwdWarpGroups) + 8 * j + 2 * (tid % 4);
            const float4 v = staged[f];
            *reinterpret_cast<float2*>(tile + row * kPitch + column) = make_float2(v.x, v.y);
            *reinterpret_cast<float2*>(tile + (row + 8) * kPitch + column) = make_float2(v.z, v.w);
        }
        __syncthreads();
        for (int c = threadIdx.x; c < kBlockM * kHeadDim / 8; c += kDqConvertThreads) {
            const int row = c / (kHeadDim / 8), column = c % (kHeadDim / 8) * 8;
            if (s0 + row < seq) {
                const float4 lo = *reinterpret_cast<const float4*>(tile + row * kPitch + column);
                const float4 hi = *reinterpret_cast<const float4*>(tile + row * kPitch + column + 4);
                const uint4 out =
                    make_uint4(pack_bf16(lo.x * scale, lo.y * scale), pack_bf16(lo.z * scale, lo.w * scale),
                               pack_bf16(hi.x * scale, hi.y * scale), pack_bf16(hi.z * scale, hi.w * scale));
                *reinterpret_cast<uint4*>(dq + ((s0 + row) * bh_count + bh) * kHeadDim + column) = out;
            }
        }
        __syncthreads();
    }
}

// out = bf16(scale * accumulator).
struct AccumulatorConvertOp {
    bf16* out;
    const float* acc;
    float scale;
    template <int M>
    __device__ void apply(int64_t i) const {
        const Vec<float, M> a = load_vec<M>(acc + i);
        Vec<bf16, M> r;
#pragma unroll
        for (int k = 0; k < M; ++k) r.v[k] = __float2bfloat16(a.v[k] * scale);
        store_vec<M>(out + i, r);
    }
};

template <int kHeadDim, bool kCausal>
int launch_bwd(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
               const bf16* o, const float* lse, void* workspace, int batch, int seq, int heads, int kv_heads,
               float scale, cudaStream_t stream) {
    const BwdWorkspace layout = bwd_workspace(batch, seq, heads, kv_heads, kHeadDim);
    auto* base = static_cast<unsigned char*>(workspace);
    auto* dq_acc = reinterpret_cast<float*>(base + layout.dq_offset);
    auto* dk_acc = reinterpret_cast<float*>(base + layout.dk_offset);
    auto* dv_acc = reinterpret_cast<float*>(base + layout.dv_offset);
    auto* dsum = reinterpret_cast<float*>(base + layout.dsum_offset);
    auto* lse_log2 = reinterpret_cast<float*>(base + layout.lse_offset);
    const int64_t bh_count = static_cast<int64_t>(batch) * heads;
    const int64_t kv_elements = static_cast<int64_t>(seq) * batch * kv_heads * kHeadDim;

    CUtensorMap q_map, k_map, v_map, do_map;
    MP_TRY(encode_tile_map(&q_map, q, seq, bh_count, kHeadDim, kBlockM, "mp_attention_bwd (q)"));
    MP_TRY(encode_tile_map(&do_map, dout, seq, bh_count, kHeadDim, kBlockM, "mp_attention_bwd (dout)"));
    MP_TRY(encode_tile_map(&k_map, k, seq, static_cast<int64_t>(batch) * kv_heads, kHeadDim, kBlockN,
                           "mp_attention_bwd (k)"));
    MP_TRY(encode_tile_map(&v_map, v, seq, static_cast<int64_t>(batch) * kv_heads, kHeadDim, kBlockN,
                           "mp_attention_bwd (v)"));
    const auto kernel = attention_bwd_kernel<kHeadDim, kCausal>;
    constexpr size_t smem = bwd_smem_bytes<kHeadDim>();
    MP_TRY(allow_dynamic_smem(kernel, smem, "mp_attention_bwd"));
    const int64_t blocks = static_cast<int64_t>((seq + kBlockN - 1) / kBlockN) * bh_count;
    if (blocks > INT32_MAX)
        MP_FAIL(MP_ERR_UNSUPPORTED, "mp_attention_bwd: %lld blocks exceed the grid limit",
                static_cast<long long>(blocks));

    // About 16 MB of dQ accumulators per group of heads: a third of the L2 of an H100.
    const int64_t head_dq_bytes = layout.seq_padded * kHeadDim * static_cast<int64_t>(sizeof(float));
    const int heads_per_group =
        static_cast<int>(std::min<int64_t>(bh_count, std::max<int64_t>(1, (int64_t{16} << 20) / head_dq_bytes)));

    int sms = 0;
    MP_TRY(sm_count(&sms));
    attention_bwd_preprocess_kernel<kHeadDim>
        <<<grid_for(bh_count * layout.seq_padded * (kHeadDim / 8), 256, sms), 256, 0, stream>>>(
            dsum, lse_log2, dq_acc, dk_acc, dv_acc, dout, o, lse, bh_count, seq, layout.seq_padded,
            static_cast<int64_t>(seq) * batch * kv_heads);
    MP_CHECK_LAUNCH("attention_bwd_preprocess_kernel");

    kernel<<<static_cast<unsigned>(blocks), kBwdThreads, smem, stream>>>(q_map, k_map, v_map, do_map, dq_acc, dk_acc,
                                                                         dv_acc, lse_log2, dsum, batch, seq, heads,
                                                                         kv_heads, layout.seq_padded, heads_per_group,
                                                                         scale * kLog2e);
    MP_CHECK_LAUNCH("attention_bwd_kernel");

    attention_dq_convert_kernel<kHeadDim>
        <<<grid_for(bh_count * layout.seq_padded / kBlockM * kDqConvertThreads, kDqConvertThreads, sms),
           kDqConvertThreads, 0, stream>>>(dq, dq_acc, bh_count, seq, layout.seq_padded, scale);
    MP_CHECK_LAUNCH("attention_dq_convert_kernel");
    MP_TRY(launch_pointwise<4>("attention_grad_convert_kernel (dk)", AccumulatorConvertOp{dk, dk_acc, scale},
                               kv_elements, aligned_to(dk, 8), stream));
    return launch_pointwise<4>("attention_grad_convert_kernel (dv)", AccumulatorConvertOp{dv, dv_acc, 1.f},
                               kv_elements, aligned_to(dv, 8), stream);
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
    *bytes = bwd_workspace(batch, seq, heads, kv_heads, head_dim).total_bytes;
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
                   aligned_to(workspace, 256),
               "mp_attention_bwd: dq, dk, dv, dout, q, k, v and o must be 16-byte aligned and workspace 256-byte "
               "aligned (dq=%p dk=%p dv=%p dout=%p q=%p k=%p v=%p o=%p workspace=%p)",
               dq, dk, dv, dout, q, k, v, o, workspace);
    MP_REQUIRE(scale > 0.f && scale <= 3.4e38f, "mp_attention_bwd: scale %g is not a positive finite number",
               static_cast<double>(scale));
    const size_t needed = bwd_workspace(batch, seq, heads, kv_heads, head_dim).total_bytes;
    MP_REQUIRE(workspace_bytes >= needed, "mp_attention_bwd: workspace_bytes %zu is below the %zu needed",
               workspace_bytes, needed);
    MP_TRY(require_hopper("mp_attention_bwd"));
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
