// AdamW (decoupled weight decay, bias-corrected) on float32 master weights, optionally writing the model copy.
#include <cmath>

#include "pointwise.cuh"

namespace mp {
namespace adamw {

// model is M* (float or bfloat16) or null. step_size = lr / (1 - beta1^step); bias2_sqrt = sqrt(1 - beta2^step).
template <typename M>
struct AdamWOp {
    float* master;
    M* model;
    const float* grad;
    float* m;
    float* v;
    float lr;
    float beta1;
    float beta2;
    float eps;
    float weight_decay;
    float step_size;
    float inv_bias2_sqrt;
    template <int N>
    __device__ void apply(int64_t i) const {
        Vec<float, N> p = load_vec<N>(master + i), mm = load_vec<N>(m + i), vv = load_vec<N>(v + i);
        const Vec<float, N> g = load_vec<N>(grad + i);
        Vec<M, N> out;
#pragma unroll
        for (int k = 0; k < N; ++k) {
            mm.v[k] = beta1 * mm.v[k] + (1.f - beta1) * g.v[k];
            vv.v[k] = beta2 * vv.v[k] + (1.f - beta2) * g.v[k] * g.v[k];
            const float denom = sqrtf(vv.v[k]) * inv_bias2_sqrt + eps;
            p.v[k] = p.v[k] * (1.f - lr * weight_decay) - step_size * mm.v[k] / denom;
            out.v[k] = from_float<M>(p.v[k]);
        }
        store_vec<N>(master + i, p);
        store_vec<N>(m + i, mm);
        store_vec<N>(v + i, vv);
        if (model != nullptr) store_vec<N>(model + i, out);
    }
};

template <typename M>
int adamw_typed(TypeTag<M>, float* master, void* model, const float* grad, float* m, float* v, int64_t count, float lr,
                float beta1, float beta2, float eps, float weight_decay, int step, cudaStream_t stream) {
    constexpr int N = 4;
    const double bias1 = 1.0 - std::pow(static_cast<double>(beta1), step);
    const double bias2 = 1.0 - std::pow(static_cast<double>(beta2), step);
    const AdamWOp<M> op{master,
                        static_cast<M*>(model),
                        grad,
                        m,
                        v,
                        lr,
                        beta1,
                        beta2,
                        eps,
                        weight_decay,
                        static_cast<float>(lr / bias1),
                        static_cast<float>(1.0 / std::sqrt(bias2))};
    const bool vec = aligned_to(master, 16) && aligned_to(grad, 16) && aligned_to(m, 16) && aligned_to(v, 16) &&
                     aligned_to(model, N * sizeof(M));
    return launch_pointwise<N>("adamw_kernel", op, count, vec, stream);
}

}  // namespace adamw
}  // namespace mp

using namespace mp;
using namespace mp::adamw;

extern "C" MP_API int mp_adamw_step(float* master, void* model, int model_dtype, const float* grad, float* m, float* v,
                                    int64_t count, float lr, float beta1, float beta2, float eps, float weight_decay,
                                    int step, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(count >= 0, "mp_adamw_step: count %lld is negative", static_cast<long long>(count));
    MP_REQUIRE(step >= 1, "mp_adamw_step: step %d must be at least 1", step);
    MP_REQUIRE(beta1 >= 0.f && beta1 < 1.f, "mp_adamw_step: beta1 %g is outside [0, 1)", static_cast<double>(beta1));
    MP_REQUIRE(beta2 >= 0.f && beta2 < 1.f, "mp_adamw_step: beta2 %g is outside [0, 1)", static_cast<double>(beta2));
    MP_REQUIRE(count == 0 || (master && grad && m && v), "mp_adamw_step: null pointer (master=%p grad=%p m=%p v=%p)",
               static_cast<void*>(master), static_cast<const void*>(grad), static_cast<void*>(m),
               static_cast<void*>(v));
    const int dtype = model != nullptr ? model_dtype : MP_FLOAT32;  // without a model copy its dtype is unused
    MP_DISPATCH_FLOAT(dtype, "mp_adamw_step (model_dtype)", adamw_typed, master, model, grad, m, v, count, lr, beta1,
                      beta2, eps, weight_decay, step, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}
