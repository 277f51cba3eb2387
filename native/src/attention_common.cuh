// Pieces shared by the Hopper flash-attention kernels: constants, bf16 packing, the accumulator -> A-fragment
// conversion, the fast exp2, the TMA tile maps over [seq][batch * heads][head_dim] tensors, and the checks every
// entry point makes.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>

#include <cstdint>

#include "dtype.cuh"
#include "tma.cuh"

namespace mp {
namespace attention {

using bf16 = __nv_bfloat16;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// A tile of kRows rows x head_dim bf16 is stored as head_dim / 64 panels of [kRows][128 bytes]; inside a panel the
// 16-byte chunk c of row r sits at chunk c ^ (r % 8) (wgmma's 128-byte swizzle, 1024-byte atoms), the layout TMA
// writes with CU_TENSOR_MAP_SWIZZLE_128B.
template <int kRows>
constexpr uint32_t panel_bytes() {
    return kRows * 128;
}

template <int kRows, int kHeadDim>
constexpr uint32_t tile_bytes() {
    return kHeadDim / 64 * panel_bytes<kRows>();
}

// Two floats as one register of two bf16, the first in the low half (the lower column of a fragment).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
}

// A warpgroup accumulator [64 x 16 kSteps] (fp32) as the bf16 register A operands of kSteps wgmma k-steps: step kk
// takes accumulator columns 16kk..16kk+15. Packed before the wgmma fence: registers written between the
// instructions would serialise them.
template <int kSteps>
__device__ __forceinline__ void pack_a_fragments(uint32_t (&a)[kSteps][4], const float (&acc)[kSteps * 8]) {
#pragma unroll
    for (int kk = 0; kk < kSteps; ++kk) {
#pragma unroll
        for (int i = 0; i < 4; ++i) a[kk][i] = pack_bf16(acc[8 * kk + 2 * i], acc[8 * kk + 2 * i + 1]);
    }
}

// 2^x with the hardware approximation (about 2 ulp); results below 2^-126 flush to zero, which a softmax whose
// largest term is 1 cannot tell apart; 2^-inf = 0.
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// Loads the tile of rows row0..row0 + kRows - 1 of one head panel by panel (a box per panel); the caller has made
// `bar` expect its bytes.
template <int kRows, int kHeadDim>
__device__ __forceinline__ void tma_load_tile(unsigned char* tile, const CUtensorMap* map, uint64_t* bar, int head,
                                              int row0) {
#pragma unroll
    for (int panel = 0; panel < kHeadDim / 64; ++panel)
        tma::load_3d(tile + panel * panel_bytes<kRows>(), map, bar, panel * 64, head, row0);
}

// A [seq][heads_total][head_dim] bf16 tensor seen by TMA in boxes of one panel: 64 columns x 1 head x box_rows
// rows, 128-byte swizzled (the layout wgmma reads); rows past seq arrive as zeros.
inline int encode_tile_map(CUtensorMap* map, const bf16* base, int seq, int64_t heads_total, int head_dim,
                           int box_rows, const char* what) {
    const cuuint64_t dims[3] = {static_cast<cuuint64_t>(head_dim), static_cast<cuuint64_t>(heads_total),
                                static_cast<cuuint64_t>(seq)};
    const cuuint64_t strides[2] = {static_cast<cuuint64_t>(head_dim) * sizeof(bf16),
                                   static_cast<cuuint64_t>(heads_total) * head_dim * sizeof(bf16)};
    const cuuint32_t box[3] = {64, 1, static_cast<cuuint32_t>(box_rows)};
    const cuuint32_t element_strides[3] = {1, 1, 1};
    const CUresult r =
        cuTensorMapEncodeTiled(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<bf16*>(base), dims, strides, box,
                               element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        const char* name = "unknown";
        cuGetErrorName(r, &name);
        MP_FAIL(MP_ERR_CUDA, "%s: cuTensorMapEncodeTiled(seq=%d heads=%lld head_dim=%d) failed: %s", what, seq,
                static_cast<long long>(heads_total), head_dim, name);
    }
    return MP_OK;
}

// The kernels use sm_90a instructions: only compute capability 9.0 devices run them.
inline int require_hopper(const char* what) {
    int device = 0, major = 0, minor = 0;
    MP_CHECK_CUDA(cudaGetDevice(&device));
    MP_CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    MP_CHECK_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    if (major != 9 || minor != 0)
        MP_FAIL(MP_ERR_UNSUPPORTED, "%s: needs a compute capability 9.0 (Hopper) device; device %d is %d.%d", what,
                device, major, minor);
    return MP_OK;
}

// Validates sizes and dtype shared by forward and backward.
inline int check_attention_shape(const char* what, int batch, int seq, int heads, int kv_heads, int head_dim,
                                 int dtype) {
    MP_REQUIRE(batch > 0 && seq > 0 && heads > 0 && kv_heads > 0,
               "%s: sizes must be positive (batch=%d seq=%d heads=%d kv_heads=%d)", what, batch, seq, heads, kv_heads);
    MP_REQUIRE(heads % kv_heads == 0, "%s: heads %d is not a multiple of kv_heads %d", what, heads, kv_heads);
    MP_REQUIRE(head_dim > 0, "%s: head_dim %d is not positive", what, head_dim);
    if (head_dim != 64 && head_dim != 128)
        MP_FAIL(MP_ERR_UNSUPPORTED, "%s: head_dim %d is not supported (64, 128)", what, head_dim);
    MP_REQUIRE(dtype == MP_BFLOAT16, "%s: dtype %d (%s) is not supported (bfloat16)", what, dtype, dtype_name(dtype));
    return MP_OK;
}

}  // namespace attention
}  // namespace mp
