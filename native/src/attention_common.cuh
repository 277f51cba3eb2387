// Building blocks of the flash-attention kernels: cp.async, ldmatrix, bf16 mma.sync m16n8k16, and the
// XOR-swizzled shared-memory tile layout they share.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "dtype.cuh"

namespace mp {
namespace attention {

using bf16 = __nv_bfloat16;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// 16-byte global -> shared copy; when !valid the destination is zero-filled and nothing is read.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    const int src_bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16* smem) {
    const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16* smem) {
    const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// c[16x8] += a[16x16] (row) * b[16x8] (col), bf16 inputs, fp32 accumulation.
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as one register of two bf16, the first in the low half (the lower column of a fragment).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
}

// A [rows][kCols] bf16 tile in shared memory, stored in 16-byte chunks whose index is XORed with a function of
// the row, so that ldmatrix over 8 consecutive rows at one column, 4-byte fragment stores and cp.async of
// whole rows are all bank-conflict free: chunk ^ (row % 8) for rows of 8 or more chunks, and
// chunk ^ ((row / 2) % 4) for rows of 4 chunks (two rows per 128-byte line).
template <int kCols>
__device__ __forceinline__ int swizzle(int row, int col) {
    static_assert(kCols == 32 || kCols % 64 == 0, "rows of 4 or a multiple of 8 chunks");
    const int key = kCols == 32 ? (row >> 1) & 3 : row & 7;
    return row * kCols + (((col >> 3) ^ key) << 3) + (col & 7);
}

// Copies rows [row0, row0 + kRows) of a global matrix (row stride `stride` elements, kCols contiguous
// elements per row) into a swizzled tile; rows at or past `limit` are zero-filled. The 16-byte chunks divide
// evenly among the threads: a fixed number of copies per thread, fully unrolled.
template <int kRows, int kCols, int kThreads>
__device__ __forceinline__ void load_tile(bf16* tile, const bf16* base, int64_t stride, int row0, int limit) {
    constexpr int kChunks = kCols / 8;
    static_assert(kRows * kChunks % kThreads == 0, "chunks divide evenly among the threads");
#pragma unroll
    for (int j = 0; j < kRows * kChunks / kThreads; ++j) {
        const int i = static_cast<int>(threadIdx.x) + j * kThreads;
        const int row = i / kChunks, chunk = i % kChunks;
        const bool valid = row0 + row < limit;
        const bf16* src = valid ? base + static_cast<int64_t>(row0 + row) * stride + chunk * 8 : base;
        cp_async_16(tile + swizzle<kCols>(row, chunk * 8), src, valid);
    }
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
