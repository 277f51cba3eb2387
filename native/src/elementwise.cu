// add, elementwise max, axpy, add_bias, bias_grad, fill, convert.
#include "pointwise.cuh"

namespace mp {
namespace elementwise {

template <typename T>
struct AddOp {
    T* y;
    const T* a;
    const T* b;
    template <int M>
    __device__ void apply(int64_t i) const {
        const Vec<T, M> va = load_vec<M>(a + i), vb = load_vec<M>(b + i);
        Vec<T, M> out;
#pragma unroll
        for (int k = 0; k < M; ++k) out.v[k] = from_float<T>(to_float(va.v[k]) + to_float(vb.v[k]));
        store_vec<M>(y + i, out);
    }
};

// y = max(a, b); a NaN in either input gives NaN (fmaxf would drop it), so that a broken input is not hidden.
// Exact in every dtype: the larger input is returned unchanged.
template <typename T>
struct MaxOp {
    T* y;
    const T* a;
    const T* b;
    template <int M>
    __device__ void apply(int64_t i) const {
        const Vec<T, M> va = load_vec<M>(a + i), vb = load_vec<M>(b + i);
        Vec<T, M> out;
#pragma unroll
        for (int k = 0; k < M; ++k) {
            const float x = to_float(va.v[k]), z = to_float(vb.v[k]);
            out.v[k] = (x > z || x != x) ? va.v[k] : vb.v[k];  // x != x: x is NaN
        }
        store_vec<M>(y + i, out);
    }
};

template <typename Y, typename X>
struct AxpyOp {
    Y* y;
    const X* x;
    float alpha;
    template <int M>
    __device__ void apply(int64_t i) const {
        const Vec<X, M> vx = load_vec<M>(x + i);
        Vec<Y, M> vy = load_vec<M>(y + i);
#pragma unroll
        for (int k = 0; k < M; ++k) vy.v[k] = from_float<Y>(fmaf(alpha, to_float(vx.v[k]), to_float(vy.v[k])));
        store_vec<M>(y + i, vy);
    }
};

template <typename T>
struct AddBiasOp {
    T* y;
    const T* bias;
    int64_t cols;
    template <int M>
    __device__ void apply(int64_t i) const {
        const int64_t col = i % cols;  // M divides cols on the vector path: a vector never crosses a row
        const Vec<T, M> vb = load_vec<M>(bias + col);
        Vec<T, M> vy = load_vec<M>(y + i);
#pragma unroll
        for (int k = 0; k < M; ++k) vy.v[k] = from_float<T>(to_float(vy.v[k]) + to_float(vb.v[k]));
        store_vec<M>(y + i, vy);
    }
};

template <typename T>
struct FillOp {
    T* t;
    T value;
    template <int M>
    __device__ void apply(int64_t i) const {
        Vec<T, M> out;
#pragma unroll
        for (int k = 0; k < M; ++k) out.v[k] = value;
        store_vec<M>(t + i, out);
    }
};

template <typename D, typename S>
struct ConvertOp {
    D* dst;
    const S* src;
    template <int M>
    __device__ void apply(int64_t i) const {
        const Vec<S, M> vs = load_vec<M>(src + i);
        Vec<D, M> out;
#pragma unroll
        for (int k = 0; k < M; ++k) out.v[k] = convert_element<D>(vs.v[k]);
        store_vec<M>(dst + i, out);
    }
};

// dbias[c] += sum over rows of dy[r, c]. Block (32, kRowsPerBlock): x walks N-column vectors, y walks rows;
// per-block partial sums meet in shared memory, then one atomicAdd per column and block.
constexpr int kBiasRows = 8;

template <int N, typename T>
__global__ void bias_grad_kernel(float* dbias, const T* dy, int rows, int cols) {
    __shared__ float partial[kBiasRows][32 * N];
    const int col = (blockIdx.x * 32 + threadIdx.x) * N;
    float acc[N] = {};
    if (col < cols) {
        for (int r = blockIdx.y * kBiasRows + threadIdx.y; r < rows; r += gridDim.y * kBiasRows) {
            const Vec<T, N> v = load_vec<N>(dy + static_cast<int64_t>(r) * cols + col);
#pragma unroll
            for (int k = 0; k < N; ++k) acc[k] += to_float(v.v[k]);
        }
    }
#pragma unroll
    for (int k = 0; k < N; ++k) partial[threadIdx.y][threadIdx.x * N + k] = acc[k];
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {
#pragma unroll
        for (int k = 0; k < N; ++k) {
            float sum = 0.f;
#pragma unroll
            for (int y = 0; y < kBiasRows; ++y) sum += partial[y][threadIdx.x * N + k];
            atomicAdd(dbias + col + k, sum);
        }
    }
}

template <int N, typename T>
int launch_bias_grad(float* dbias, const T* dy, int rows, int cols, cudaStream_t stream) {
    int sms = 0;
    MP_TRY(sm_count(&sms));
    const int col_blocks = (cols + 32 * N - 1) / (32 * N);
    const int row_blocks_needed = (rows + kBiasRows - 1) / kBiasRows;
    int row_blocks = (sms * 8 + col_blocks - 1) / col_blocks;
    row_blocks = row_blocks < 1 ? 1 : (row_blocks > row_blocks_needed ? row_blocks_needed : row_blocks);
    row_blocks = row_blocks > 65535 ? 65535 : row_blocks;
    bias_grad_kernel<N, T><<<dim3(col_blocks, row_blocks), dim3(32, kBiasRows), 0, stream>>>(dbias, dy, rows, cols);
    MP_CHECK_LAUNCH("bias_grad_kernel");
    return MP_OK;
}

template <typename T>
int add_typed(TypeTag<T>, void* y, const void* a, const void* b, int64_t count, cudaStream_t stream) {
    const bool vec = aligned_to(y, 16) && aligned_to(a, 16) && aligned_to(b, 16);
    return launch_pointwise<kVec16<T>>("add_kernel",
                                       AddOp<T>{static_cast<T*>(y), static_cast<const T*>(a), static_cast<const T*>(b)},
                                       count, vec, stream);
}

template <typename T>
int max_typed(TypeTag<T>, void* y, const void* a, const void* b, int64_t count, cudaStream_t stream) {
    const bool vec = aligned_to(y, 16) && aligned_to(a, 16) && aligned_to(b, 16);
    return launch_pointwise<kVec16<T>>("max_kernel",
                                       MaxOp<T>{static_cast<T*>(y), static_cast<const T*>(a), static_cast<const T*>(b)},
                                       count, vec, stream);
}

template <typename X, typename Y>
int axpy_typed(TypeTag<X>, TypeTag<Y>, void* y, float alpha, const void* x, int64_t count, cudaStream_t stream) {
    constexpr int N = kVec16<Y> < kVec16<X> ? kVec16<Y> : kVec16<X>;
    const bool vec = aligned_to(y, N * sizeof(Y)) && aligned_to(x, N * sizeof(X));
    return launch_pointwise<N>("axpy_kernel", AxpyOp<Y, X>{static_cast<Y*>(y), static_cast<const X*>(x), alpha}, count,
                               vec, stream);
}

template <typename Y>
int axpy_dispatch_x(TypeTag<Y> ytag, void* y, float alpha, const void* x, int x_dtype, int64_t count,
                    cudaStream_t stream) {
    MP_DISPATCH_FLOAT(x_dtype, "mp_axpy (x_dtype)", axpy_typed, ytag, y, alpha, x, count, stream);
}

template <typename T>
int add_bias_typed(TypeTag<T>, void* y, const void* bias, int rows, int cols, cudaStream_t stream) {
    constexpr int N = kVec16<T>;
    const bool vec = cols % N == 0 && aligned_to(y, 16) && aligned_to(bias, 16);
    return launch_pointwise<N>("add_bias_kernel", AddBiasOp<T>{static_cast<T*>(y), static_cast<const T*>(bias), cols},
                               static_cast<int64_t>(rows) * cols, vec, stream);
}

template <typename T>
int bias_grad_typed(TypeTag<T>, float* dbias, const void* dy, int rows, int cols, cudaStream_t stream) {
    if (rows == 0) return MP_OK;
    constexpr int N = kVec16<T>;
    const T* in = static_cast<const T*>(dy);
    if (cols % N == 0 && aligned_to(dy, 16)) return launch_bias_grad<N>(dbias, in, rows, cols, stream);
    return launch_bias_grad<1>(dbias, in, rows, cols, stream);
}

template <typename T>
int fill_typed(TypeTag<T>, void* t, int64_t count, double value, cudaStream_t stream) {
    T v;
    if constexpr (std::is_same_v<T, __nv_bfloat16>)
        v = __double2bfloat16(value);
    else if constexpr (std::is_same_v<T, __half>)
        v = __double2half(value);
    else
        v = static_cast<T>(value);
    return launch_pointwise<kVec16<T>>("fill_kernel", FillOp<T>{static_cast<T*>(t), v}, count, aligned_to(t, 16),
                                       stream);
}

template <typename S, typename D>
int convert_typed(TypeTag<S>, TypeTag<D>, void* dst, const void* src, int64_t count, cudaStream_t stream) {
    if constexpr (std::is_same_v<D, S>) {
        if (count > 0) {
            MP_CHECK_CUDA(
                cudaMemcpyAsync(dst, src, static_cast<size_t>(count) * sizeof(D), cudaMemcpyDeviceToDevice, stream));
        }
        return MP_OK;
    } else {
        constexpr int N = kVec16<D> < kVec16<S> ? kVec16<D> : kVec16<S>;
        const bool vec = aligned_to(dst, N * sizeof(D)) && aligned_to(src, N * sizeof(S));
        return launch_pointwise<N>("convert_kernel", ConvertOp<D, S>{static_cast<D*>(dst), static_cast<const S*>(src)},
                                   count, vec, stream);
    }
}

template <typename D>
int convert_dispatch_src(TypeTag<D> dtag, void* dst, const void* src, int src_dtype, int64_t count,
                         cudaStream_t stream) {
    MP_DISPATCH_ALL(src_dtype, "mp_convert (src_dtype)", convert_typed, dtag, dst, src, count, stream);
}

}  // namespace elementwise
}  // namespace mp

using namespace mp;
using namespace mp::elementwise;

extern "C" MP_API int mp_add(void* y, const void* a, const void* b, int64_t count, int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(count >= 0, "mp_add: count %lld is negative", static_cast<long long>(count));
    MP_REQUIRE(count == 0 || (y && a && b), "mp_add: null pointer (y=%p a=%p b=%p)", y, a, b);
    MP_DISPATCH_FLOAT(dtype, "mp_add", add_typed, y, a, b, count, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_elementwise_max(void* y, const void* a, const void* b, int64_t count, int dtype,
                                          void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(count >= 0, "mp_elementwise_max: count %lld is negative", static_cast<long long>(count));
    MP_REQUIRE(count == 0 || (y && a && b), "mp_elementwise_max: null pointer (y=%p a=%p b=%p)", y, a, b);
    MP_DISPATCH_FLOAT(dtype, "mp_elementwise_max", max_typed, y, a, b, count, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_axpy(void* y, int y_dtype, float alpha, const void* x, int x_dtype, int64_t count,
                              void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(count >= 0, "mp_axpy: count %lld is negative", static_cast<long long>(count));
    MP_REQUIRE(count == 0 || (y && x), "mp_axpy: null pointer (y=%p x=%p)", y, x);
    MP_DISPATCH_FLOAT(y_dtype, "mp_axpy (y_dtype)", axpy_dispatch_x, y, alpha, x, x_dtype, count,
                      static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_add_bias(void* y, const void* bias, int rows, int cols, int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(rows >= 0, "mp_add_bias: rows %d is negative", rows);
    MP_REQUIRE(cols > 0, "mp_add_bias: cols %d is not positive", cols);
    MP_REQUIRE(rows == 0 || (y && bias), "mp_add_bias: null pointer (y=%p bias=%p)", y, bias);
    MP_DISPATCH_FLOAT(dtype, "mp_add_bias", add_bias_typed, y, bias, rows, cols, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_bias_grad(float* dbias, const void* dy, int rows, int cols, int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(rows >= 0, "mp_bias_grad: rows %d is negative", rows);
    MP_REQUIRE(cols > 0, "mp_bias_grad: cols %d is not positive", cols);
    MP_REQUIRE(rows == 0 || (dbias && dy), "mp_bias_grad: null pointer (dbias=%p dy=%p)", static_cast<void*>(dbias),
               dy);
    MP_DISPATCH_FLOAT(dtype, "mp_bias_grad", bias_grad_typed, dbias, dy, rows, cols, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_fill(void* t, int64_t count, double value, int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(count >= 0, "mp_fill: count %lld is negative", static_cast<long long>(count));
    MP_REQUIRE(count == 0 || t, "mp_fill: t is null");
    MP_DISPATCH_ALL(dtype, "mp_fill", fill_typed, t, count, value, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_convert(void* dst, int dst_dtype, const void* src, int src_dtype, int64_t count,
                                 void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(count >= 0, "mp_convert: count %lld is negative", static_cast<long long>(count));
    MP_REQUIRE(count == 0 || (dst && src), "mp_convert: null pointer (dst=%p src=%p)", dst, src);
    MP_DISPATCH_ALL(dst_dtype, "mp_convert (dst_dtype)", convert_dispatch_src, dst, src, src_dtype, count,
                    static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}
