// Element types, conversions, 16-byte vectors and dtype dispatch shared by every kernel family.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "status.h"

namespace mp {

// ---- conversions (math is done in float; double keeps its precision where both sides are double) ----
template <typename T>
__host__ __device__ __forceinline__ float to_float(T x) {
    return static_cast<float>(x);
}
template <>
__host__ __device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) {
    return __bfloat162float(x);
}
template <>
__host__ __device__ __forceinline__ float to_float<__half>(__half x) {
    return __half2float(x);
}

template <typename T>
__host__ __device__ __forceinline__ T from_float(float x) {
    return static_cast<T>(x);
}
template <>
__host__ __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
    return __float2bfloat16(x);
}
template <>
__host__ __device__ __forceinline__ __half from_float<__half>(float x) {
    return __float2half(x);
}

// Converts between any two element types, going through double when either side is double.
template <typename D, typename S>
__device__ __forceinline__ D convert_element(S x) {
    if constexpr (std::is_same_v<D, S>) {
        return x;
    } else if constexpr (std::is_same_v<S, double>) {
        if constexpr (std::is_same_v<D, __nv_bfloat16>)
            return __double2bfloat16(x);
        else if constexpr (std::is_same_v<D, __half>)
            return __double2half(x);
        else
            return static_cast<D>(x);
    } else if constexpr (std::is_same_v<D, double>) {
        if constexpr (std::is_same_v<S, __nv_bfloat16> || std::is_same_v<S, __half>)
            return to_float(x);
        else
            return static_cast<double>(x);
    } else if constexpr (std::is_same_v<D, int32_t>) {
        return static_cast<int32_t>(to_float(x));
    } else if constexpr (std::is_same_v<S, int32_t>) {
        return from_float<D>(static_cast<float>(x));
    } else {
        return from_float<D>(to_float(x));
    }
}

// ---- vectors: N elements moved as one aligned load/store (16 bytes when N = 16 / sizeof(T)) ----
template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
    T v[N];
};

template <typename T>
constexpr int kVec16 = 16 / static_cast<int>(sizeof(T));

template <int N, typename T>
__device__ __forceinline__ Vec<T, N> load_vec(const T* p) {
    return *reinterpret_cast<const Vec<T, N>*>(p);
}

template <int N, typename T>
__device__ __forceinline__ void store_vec(T* p, const Vec<T, N>& x) {
    *reinterpret_cast<Vec<T, N>*>(p) = x;
}

inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// ---- warp and block reductions ----
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
    return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
    return x;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// scratch: 32 floats of shared memory; safe to call repeatedly with the same scratch.
__device__ __forceinline__ float block_sum(float x, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    x = warp_sum(x);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    x = lane < warps ? scratch[lane] : 0.f;
    return warp_sum(x);
}

__device__ __forceinline__ float block_max(float x, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    x = warp_max(x);
    __syncthreads();
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    x = lane < warps ? scratch[lane] : -INFINITY;
    return warp_max(x);
}

// ---- dtype dispatch ----
template <typename T>
struct TypeTag {
    using type = T;
};

const char* dtype_name(int dtype);

// MP_OK for float32 and bfloat16, else MP_ERR_INVALID_ARGUMENT naming the dtype.
int require_float_dtype(int dtype, const char* what);

// `return fn(TypeTag<T>{}, args...)` for T float32 or bfloat16; any other dtype fails with
// MP_ERR_INVALID_ARGUMENT. Used as the last statement of a function returning an mp_status.
#define MP_DISPATCH_FLOAT(dtype, what, fn, ...)                                                              \
    switch (dtype) {                                                                                         \
        case MP_FLOAT32:                                                                                     \
            return fn(::mp::TypeTag<float>{}, __VA_ARGS__);                                                  \
        case MP_BFLOAT16:                                                                                    \
            return fn(::mp::TypeTag<__nv_bfloat16>{}, __VA_ARGS__);                                          \
        default:                                                                                             \
            MP_FAIL(MP_ERR_INVALID_ARGUMENT, "%s: dtype %d (%s) is not supported (float32, bfloat16)", what, \
                    static_cast<int>(dtype), ::mp::dtype_name(dtype));                                       \
    }

// Like MP_DISPATCH_FLOAT over every mp_dtype.
#define MP_DISPATCH_ALL(dtype, what, fn, ...)                                                        \
    switch (dtype) {                                                                                 \
        case MP_FLOAT32:                                                                             \
            return fn(::mp::TypeTag<float>{}, __VA_ARGS__);                                          \
        case MP_FLOAT64:                                                                             \
            return fn(::mp::TypeTag<double>{}, __VA_ARGS__);                                         \
        case MP_BFLOAT16:                                                                            \
            return fn(::mp::TypeTag<__nv_bfloat16>{}, __VA_ARGS__);                                  \
        case MP_FLOAT16:                                                                             \
            return fn(::mp::TypeTag<__half>{}, __VA_ARGS__);                                         \
        case MP_INT32:                                                                               \
            return fn(::mp::TypeTag<int32_t>{}, __VA_ARGS__);                                        \
        default:                                                                                     \
            MP_FAIL(MP_ERR_INVALID_ARGUMENT, "%s: unknown dtype %d", what, static_cast<int>(dtype)); \
    }

// ---- launch helpers ----
// Multiprocessors of the current device (cached per device).
int sm_count(int* count);

// Blocks for a grid-stride loop over `work` items with `threads` per block.
inline unsigned grid_for(int64_t work, int threads, int sms) {
    const int64_t needed = (work + threads - 1) / threads;
    const int64_t cap = static_cast<int64_t>(sms) * 32;
    return static_cast<unsigned>(needed < 1 ? 1 : (needed < cap ? needed : cap));
}

// Lets `kernel` use `bytes` of dynamic shared memory, opting in above the 48 KiB default; past the device's
// limit (less the kernel's static shared memory) the request is MP_ERR_UNSUPPORTED.
template <typename Kernel>
int allow_dynamic_smem(Kernel kernel, size_t bytes, const char* what) {
    if (bytes <= 48 * 1024) return MP_OK;
    int device = 0, limit = 0;
    MP_CHECK_CUDA(cudaGetDevice(&device));
    MP_CHECK_CUDA(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    cudaFuncAttributes attributes{};
    MP_CHECK_CUDA(cudaFuncGetAttributes(&attributes, kernel));
    if (bytes + attributes.sharedSizeBytes > static_cast<size_t>(limit))
        MP_FAIL(MP_ERR_UNSUPPORTED,
                "%s needs %zu bytes of shared memory per block (%zu dynamic + %zu static); the device allows %d", what,
                bytes + attributes.sharedSizeBytes, bytes, attributes.sharedSizeBytes, limit);
    MP_CHECK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    return MP_OK;
}

}  // namespace mp
