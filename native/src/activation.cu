// GeLU (tanh form) and SwiGLU, forward and backward.
#include "pointwise.cuh"

namespace mp {
namespace activation {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

__device__ __forceinline__ float gelu(float x) {
    const float t = tanhf(kSqrt2OverPi * (x + kGeluCubic * x * x * x));
    return 0.5f * x * (1.f + t);
}

__device__ __forceinline__ float gelu_grad(float x) {
    const float t = tanhf(kSqrt2OverPi * (x + kGeluCubic * x * x * x));
    const float dinner = kSqrt2OverPi * (1.f + 3.f * kGeluCubic * x * x);
    return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * dinner;
}

__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }

template <typename T>
struct GeluFwdOp {
    T* y;
    const T* x;
    template <int M>
    __device__ void apply(int64_t i) const {
        const Vec<T, M> vx = load_vec<M>(x + i);
        Vec<T, M> out;
#pragma unroll
        for (int k = 0; k < M; ++k) out.v[k] = from_float<T>(gelu(to_float(vx.v[k])));
        store_vec<M>(y + i, out);
    }
};

template <typename T>
struct GeluBwdOp {
    T* dx;
    const T* dy;
    const T* x;
    template <int M>
    __device__ void apply(int64_t i) const {
        const Vec<T, M> vx = load_vec<M>(x + i), vdy = load_vec<M>(dy + i);
        Vec<T, M> out;
#pragma unroll
        for (int k = 0; k < M; ++k) out.v[k] = from_float<T>(to_float(vdy.v[k]) * gelu_grad(to_float(vx.v[k])));
        store_vec<M>(dx + i, out);
    }
};

// Element i of y [rows, cols] reads gate_up[r, c] and gate_up[r, cols + c].
template <typename T>
struct SwigluFwdOp {
    T* y;
    const T* gate_up;
    int64_t cols;
    template <int M>
    __device__ void apply(int64_t i) const {
        const int64_t r = i / cols, c = i % cols;
        const T* g = gate_up + r * 2 * cols + c;
        const Vec<T, M> vg = load_vec<M>(g), vu = load_vec<M>(g + cols);
        Vec<T, M> out;
#pragma unroll
        for (int k = 0; k < M; ++k) {
            const float gate = to_float(vg.v[k]);
            out.v[k] = from_float<T>(gate * sigmoid(gate) * to_float(vu.v[k]));
        }
        store_vec<M>(y + i, out);
    }
};

template <typename T>
struct SwigluBwdOp {
    T* dgate_up;
    const T* dy;
    const T* gate_up;
    int64_t cols;
    template <int M>
    __device__ void apply(int64_t i) const {
        const int64_t r = i / cols, c = i % cols;
        const int64_t at = r * 2 * cols + c;
        const Vec<T, M> vg = load_vec<M>(gate_up + at), vu = load_vec<M>(gate_up + at + cols);
        const Vec<T, M> vdy = load_vec<M>(dy + i);
        Vec<T, M> dg, du;
#pragma unroll
        for (int k = 0; k < M; ++k) {
            const float gate = to_float(vg.v[k]), up = to_float(vu.v[k]), grad = to_float(vdy.v[k]);
            const float s = sigmoid(gate);
            dg.v[k] = from_float<T>(grad * up * s * (1.f + gate * (1.f - s)));
            du.v[k] = from_float<T>(grad * gate * s);
        }
        store_vec<M>(dgate_up + at, dg);
        store_vec<M>(dgate_up + at + cols, du);
    }
};

template <typename T>
int gelu_fwd_typed(TypeTag<T>, void* y, const void* x, int64_t count, cudaStream_t stream) {
    const bool vec = aligned_to(y, 16) && aligned_to(x, 16);
    return launch_pointwise<kVec16<T>>("gelu_fwd_kernel", GeluFwdOp<T>{static_cast<T*>(y), static_cast<const T*>(x)},
                                       count, vec, stream);
}

template <typename T>
int gelu_bwd_typed(TypeTag<T>, void* dx, const void* dy, const void* x, int64_t count, cudaStream_t stream) {
    const bool vec = aligned_to(dx, 16) && aligned_to(dy, 16) && aligned_to(x, 16);
    return launch_pointwise<kVec16<T>>(
        "gelu_bwd_kernel", GeluBwdOp<T>{static_cast<T*>(dx), static_cast<const T*>(dy), static_cast<const T*>(x)},
        count, vec, stream);
}

template <typename T>
int swiglu_fwd_typed(TypeTag<T>, void* y, const void* gate_up, int rows, int cols, cudaStream_t stream) {
    constexpr int N = kVec16<T>;
    const bool vec = cols % N == 0 && aligned_to(y, 16) && aligned_to(gate_up, 16);
    return launch_pointwise<N>("swiglu_fwd_kernel",
                               SwigluFwdOp<T>{static_cast<T*>(y), static_cast<const T*>(gate_up), cols},
                               static_cast<int64_t>(rows) * cols, vec, stream);
}

template <typename T>
int swiglu_bwd_typed(TypeTag<T>, void* dgate_up, const void* dy, const void* gate_up, int rows, int cols,
                     cudaStream_t stream) {
    constexpr int N = kVec16<T>;
    const bool vec = cols % N == 0 && aligned_to(dgate_up, 16) && aligned_to(dy, 16) && aligned_to(gate_up, 16);
    return launch_pointwise<N>(
        "swiglu_bwd_kernel",
        SwigluBwdOp<T>{static_cast<T*>(dgate_up), static_cast<const T*>(dy), static_cast<const T*>(gate_up), cols},
        static_cast<int64_t>(rows) * cols, vec, stream);
}

}  // namespace activation
}  // namespace mp

using namespace mp;
using namespace mp::activation;

extern "C" MP_API int mp_gelu_fwd(void* y, const void* x, int64_t count, int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(count >= 0, "mp_gelu_fwd: count %lld is negative", static_cast<long long>(count));
    MP_REQUIRE(count == 0 || (y && x), "mp_gelu_fwd: null pointer (y=%p x=%p)", y, x);
    MP_DISPATCH_FLOAT(dtype, "mp_gelu_fwd", gelu_fwd_typed, y, x, count, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_gelu_bwd(void* dx, const void* dy, const void* x, int64_t count, int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(count >= 0, "mp_gelu_bwd: count %lld is negative", static_cast<long long>(count));
    MP_REQUIRE(count == 0 || (dx && dy && x), "mp_gelu_bwd: null pointer (dx=%p dy=%p x=%p)", dx, dy, x);
    MP_DISPATCH_FLOAT(dtype, "mp_gelu_bwd", gelu_bwd_typed, dx, dy, x, count, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_swiglu_fwd(void* y, const void* gate_up, int rows, int cols, int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(rows >= 0, "mp_swiglu_fwd: rows %d is negative", rows);
    MP_REQUIRE(cols > 0, "mp_swiglu_fwd: cols %d is not positive", cols);
    MP_REQUIRE(rows == 0 || (y && gate_up), "mp_swiglu_fwd: null pointer (y=%p gate_up=%p)", y, gate_up);
    MP_DISPATCH_FLOAT(dtype, "mp_swiglu_fwd", swiglu_fwd_typed, y, gate_up, rows, cols,
                      static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_swiglu_bwd(void* dgate_up, const void* dy, const void* gate_up, int rows, int cols, int dtype,
                                    void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(rows >= 0, "mp_swiglu_bwd: rows %d is negative", rows);
    MP_REQUIRE(cols > 0, "mp_swiglu_bwd: cols %d is not positive", cols);
    MP_REQUIRE(rows == 0 || (dgate_up && dy && gate_up), "mp_swiglu_bwd: null pointer (dgate_up=%p dy=%p gate_up=%p)",
               dgate_up, dy, gate_up);
    MP_DISPATCH_FLOAT(dtype, "mp_swiglu_bwd", swiglu_bwd_typed, dgate_up, dy, gate_up, rows, cols,
                      static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}
