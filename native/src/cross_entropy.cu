// Vocabulary-parallel cross-entropy pieces: row max, sum of exponentials and target logit, loss, gradient.
#include "pointwise.cuh"

namespace mp {
namespace xent {

constexpr int kThreads = 256;

template <int N, typename T>
__global__ void row_max_kernel(float* row_max, const T* logits, int rows, int cols) {
    __shared__ float scratch[32];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* row = logits + static_cast<int64_t>(r) * cols;
        float m = -INFINITY;
        for (int j = threadIdx.x * N; j < cols; j += blockDim.x * N) {
            const Vec<T, N> v = load_vec<N>(row + j);
#pragma unroll
            for (int k = 0; k < N; ++k) m = fmaxf(m, to_float(v.v[k]));
        }
        m = block_max(m, scratch);
        if (threadIdx.x == 0) row_max[r] = m;
    }
}

template <int N, typename T>
__global__ void sum_exp_kernel(float* sum_exp, float* target_logit, const T* logits, const float* row_max,
                               const int32_t* targets, int rows, int cols, int vocab_start) {
    __shared__ float scratch[32];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* row = logits + static_cast<int64_t>(r) * cols;
        const float m = row_max[r];
        float s = 0.f;
        for (int j = threadIdx.x * N; j < cols; j += blockDim.x * N) {
            const Vec<T, N> v = load_vec<N>(row + j);
#pragma unroll
            for (int k = 0; k < N; ++k) s += expf(to_float(v.v[k]) - m);
        }
        s = block_sum(s, scratch);
        if (threadIdx.x == 0) {
            sum_exp[r] = s;
            const int64_t t = static_cast<int64_t>(targets[r]) - vocab_start;
            target_logit[r] = t >= 0 && t < cols ? to_float(row[t]) : 0.f;
        }
    }
}

struct LossOp {
    float* loss;
    const float* row_max;
    const float* sum_exp;
    const float* target_logit;
    template <int M>
    __device__ void apply(int64_t i) const {
#pragma unroll
        for (int k = 0; k < M; ++k) loss[i + k] = logf(sum_exp[i + k]) + row_max[i + k] - target_logit[i + k];
    }
};

template <typename T>
struct XentBwdOp {
    T* dlogits;
    const T* logits;
    const float* row_max;
    const float* sum_exp;
    const int32_t* targets;
    int64_t cols;
    int vocab_start;
    float scale;
    template <int M>
    __device__ void apply(int64_t i) const {
        const int64_t r = i / cols, c = i % cols;  // M divides cols on the vector path
        const float m = row_max[r], inv_sum = 1.f / sum_exp[r];
        const int64_t t = static_cast<int64_t>(targets[r]) - vocab_start;
        const Vec<T, M> v = load_vec<M>(logits + i);
        Vec<T, M> out;
#pragma unroll
        for (int k = 0; k < M; ++k) {
            const float p = expf(to_float(v.v[k]) - m) * inv_sum;
            out.v[k] = from_float<T>(scale * (p - (c + k == t ? 1.f : 0.f)));
        }
        store_vec<M>(dlogits + i, out);
    }
};

template <typename T>
int row_max_typed(TypeTag<T>, float* row_max, const void* logits, int rows, int cols, cudaStream_t stream) {
    int sms = 0;
    MP_TRY(sm_count(&sms));
    const int blocks = rows < sms * 8 ? rows : sms * 8;
    constexpr int N = kVec16<T>;
    const T* in = static_cast<const T*>(logits);
    if (cols % N == 0 && aligned_to(logits, 16)) {
        row_max_kernel<N, T><<<blocks, kThreads, 0, stream>>>(row_max, in, rows, cols);
    } else {
        row_max_kernel<1, T><<<blocks, kThreads, 0, stream>>>(row_max, in, rows, cols);
    }
    MP_CHECK_LAUNCH("row_max_kernel");
    return MP_OK;
}

template <typename T>
int sum_exp_typed(TypeTag<T>, float* sum_exp, float* target_logit, const void* logits, const float* row_max,
                  const int32_t* targets, int rows, int cols, int vocab_start, cudaStream_t stream) {
    int sms = 0;
    MP_TRY(sm_count(&sms));
    const int blocks = rows < sms * 8 ? rows : sms * 8;
    constexpr int N = kVec16<T>;
    const T* in = static_cast<const T*>(logits);
    if (cols % N == 0 && aligned_to(logits, 16)) {
        sum_exp_kernel<N, T>
            <<<blocks, kThreads, 0, stream>>>(sum_exp, target_logit, in, row_max, targets, rows, cols, vocab_start);
    } else {
        sum_exp_kernel<1, T>
            <<<blocks, kThreads, 0, stream>>>(sum_exp, target_logit, in, row_max, targets, rows, cols, vocab_start);
    }
    MP_CHECK_LAUNCH("sum_exp_kernel");
    return MP_OK;
}

template <typename T>
int xent_bwd_typed(TypeTag<T>, void* dlogits, const void* logits, const float* row_max, const float* sum_exp,
                   const int32_t* targets, int rows, int cols, int vocab_start, float scale, cudaStream_t stream) {
    constexpr int N = kVec16<T>;
    const bool vec = cols % N == 0 && aligned_to(dlogits, 16) && aligned_to(logits, 16);
    return launch_pointwise<N>("xent_bwd_kernel",
                               XentBwdOp<T>{static_cast<T*>(dlogits), static_cast<const T*>(logits), row_max, sum_exp,
                                            targets, cols, vocab_start, scale},
                               static_cast<int64_t>(rows) * cols, vec, stream);
}

}  // namespace xent
}  // namespace mp

using namespace mp;
using namespace mp::xent;

extern "C" MP_API int mp_xent_row_max(float* row_max, const void* logits, int rows, int cols, int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(rows >= 0, "mp_xent_row_max: rows %d is negative", rows);
    MP_REQUIRE(cols > 0, "mp_xent_row_max: cols %d is not positive", cols);
    MP_REQUIRE(rows == 0 || (row_max && logits), "mp_xent_row_max: null pointer (row_max=%p logits=%p)",
               static_cast<void*>(row_max), logits);
    if (rows == 0) return require_float_dtype(dtype, "mp_xent_row_max");
    MP_DISPATCH_FLOAT(dtype, "mp_xent_row_max", row_max_typed, row_max, logits, rows, cols,
                      static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_xent_sum_exp(float* sum_exp, float* target_logit, const void* logits, const float* row_max,
                                      const int32_t* targets, int rows, int cols, int vocab_start, int dtype,
                                      void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(rows >= 0, "mp_xent_sum_exp: rows %d is negative", rows);
    MP_REQUIRE(cols > 0, "mp_xent_sum_exp: cols %d is not positive", cols);
    MP_REQUIRE(rows == 0 || (sum_exp && target_logit && logits && row_max && targets),
               "mp_xent_sum_exp: null pointer (sum_exp=%p target_logit=%p logits=%p row_max=%p targets=%p)",
               static_cast<void*>(sum_exp), static_cast<void*>(target_logit), logits, static_cast<const void*>(row_max),
               static_cast<const void*>(targets));
    if (rows == 0) return require_float_dtype(dtype, "mp_xent_sum_exp");
    MP_DISPATCH_FLOAT(dtype, "mp_xent_sum_exp", sum_exp_typed, sum_exp, target_logit, logits, row_max, targets, rows,
                      cols, vocab_start, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_xent_loss(float* loss, const float* row_max, const float* sum_exp, const float* target_logit,
                                   int rows, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(rows >= 0, "mp_xent_loss: rows %d is negative", rows);
    MP_REQUIRE(rows == 0 || (loss && row_max && sum_exp && target_logit),
               "mp_xent_loss: null pointer (loss=%p row_max=%p sum_exp=%p target_logit=%p)", static_cast<void*>(loss),
               static_cast<const void*>(row_max), static_cast<const void*>(sum_exp),
               static_cast<const void*>(target_logit));
    return launch_pointwise<1>("xent_loss_kernel", LossOp{loss, row_max, sum_exp, target_logit}, rows, false,
                               static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_xent_bwd(void* dlogits, const void* logits, const float* row_max, const float* sum_exp,
                                  const int32_t* targets, int rows, int cols, int vocab_start, float scale, int dtype,
                                  void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(rows >= 0, "mp_xent_bwd: rows %d is negative", rows);
    MP_REQUIRE(cols > 0, "mp_xent_bwd: cols %d is not positive", cols);
    MP_REQUIRE(rows == 0 || (dlogits && logits && row_max && sum_exp && targets),
               "mp_xent_bwd: null pointer (dlogits=%p logits=%p row_max=%p sum_exp=%p targets=%p)", dlogits, logits,
               static_cast<const void*>(row_max), static_cast<const void*>(sum_exp), static_cast<const void*>(targets));
    MP_DISPATCH_FLOAT(dtype, "mp_xent_bwd", xent_bwd_typed, dlogits, logits, row_max, sum_exp, targets, rows, cols,
                      vocab_start, scale, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}
