// Hopper tensor memory accelerator (TMA, sm_90): tile and bulk copies from global to shared memory, completed
// through a shared-memory mbarrier that counts the bytes that landed; bulk reductions from shared to global memory;
// and the mbarrier operations a producer/consumer pipeline needs.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "status.h"

namespace mp {
namespace tma {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// A barrier that completes a phase once `count` threads have arrived (and every expected byte has landed).
__device__ __forceinline__ void barrier_init(uint64_t* bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}

// Makes the initialised barriers visible to the async proxy (the TMA unit) before any copy signals them.
__device__ __forceinline__ void fence_barrier_init() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

__device__ __forceinline__ void arrive(uint64_t* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}

// Arrives and adds `bytes` to the bytes the current phase waits for.
__device__ __forceinline__ void arrive_expect_bytes(uint64_t* bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
                 : "memory");
}

// Blocks until the phase with the given parity (0 for the first, 1 for the second, ...) has completed.
__device__ __forceinline__ void wait(uint64_t* bar, uint32_t parity) {
    asm volatile(
        "{\n.reg .pred done;\n"
        "wait_%=:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra wait_%=;\n}\n" ::"r"(smem_addr(bar)),
        "r"(parity)
        : "memory");
}

// Copies the box at coordinates (c0, c1, c2) of a rank-3 tensor map into shared memory; `bar` counts its bytes.
__device__ __forceinline__ void load_3d(void* dst, const CUtensorMap* map, uint64_t* bar, int c0, int c1, int c2) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], "
        "[%2];\n" ::"r"(smem_addr(dst)),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_addr(bar)), "r"(c0), "r"(c1), "r"(c2)
        : "memory");
}

// Copies `bytes` contiguous bytes (a multiple of 16; both addresses 16-byte aligned) into shared memory; `bar`
// counts them.
__device__ __forceinline__ void load_1d(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
            smem_addr(dst)),
        "l"(src), "r"(bytes), "r"(smem_addr(bar))
        : "memory");
}

// dst[0, bytes / 4) += src[0, bytes / 4) in float32, element by element atomically in global memory (a multiple of
// 16 bytes; both addresses 16-byte aligned), as one bulk operation of this thread's current bulk group. The lines
// it touches are kept in L2 ahead of others (evict-last): the same accumulator is added to again soon.
__device__ __forceinline__ void reduce_add_1d(float* dst, const float* src, uint32_t bytes) {
    asm volatile(
        "{\n.reg .b64 policy;\n"
        "createpolicy.fractional.L2::evict_last.b64 policy, 1.0;\n"
        "cp.reduce.async.bulk.global.shared::cta.bulk_group.L2::cache_hint.add.f32 [%0], [%1], %2, policy;\n}\n" ::"l"(
            dst),
        "r"(smem_addr(src)), "r"(bytes)
        : "memory");
}

// Closes this thread's current bulk group.
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }

// Waits until all but the kPending most recent committed bulk groups of this thread have finished reading their
// shared memory.
template <int kPending>
__device__ __forceinline__ void bulk_wait_read() {
    asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(kPending) : "memory");
}

// Waits until every committed bulk group of this thread has completed, its writes included.
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

}  // namespace tma
}  // namespace mp
