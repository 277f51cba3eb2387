/* ModelParallel native kernels: the one public header of libmpnative.so.
 *
 * Conventions
 * - Every export is `int mp_<area>_<verb>(...)` and returns an mp_status; nothing exits, aborts or
 *   throws across this ABI. On failure, mp_last_error() returns a thread-local detail string
 *   ("file:line: message") describing the last failing call on this thread.
 * - Arguments: outputs first, then inputs, then sizes, then the stream (a cudaStream_t passed as
 *   void*) last. Sizes count elements unless the name says bytes.
 * - Matrices are row-major. Activations are [tokens, hidden] with tokens sequence-major.
 * - dtype codes follow mp_dtype. Statistics (norm stats, attention lse, cross-entropy sums) and
 *   parameter gradients are float32.
 * - Every launch is checked; a kernel launch error returns MP_ERR_CUDA with the CUDA error text.
 */
#ifndef MP_NATIVE_H
#define MP_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define MP_API __declspec(dllexport)
#else
#define MP_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mp_status {
    MP_OK = 0,
    MP_ERR_INVALID_ARGUMENT = 1, /* a null pointer, a negative or unsupported size, an unknown dtype */
    MP_ERR_UNSUPPORTED = 2,      /* a valid request this build does not implement (e.g. head_dim 96) */
    MP_ERR_CUDA = 3,             /* a CUDA runtime call or kernel launch failed */
    MP_ERR_INTERNAL = 4,
} mp_status;

typedef enum mp_dtype {
    MP_FLOAT32 = 0,
    MP_FLOAT64 = 1,
    MP_BFLOAT16 = 2,
    MP_FLOAT16 = 3,
    MP_INT32 = 4,
} mp_dtype;

typedef enum mp_norm_kind {
    MP_RMSNORM = 0,
    MP_LAYERNORM = 1,
} mp_norm_kind;

/* Library version as major*10000 + minor*100 + patch. */
MP_API int mp_version_get(int* version);

/* Detail of the last failure on the calling thread; never null; "" when none. */
MP_API const char* mp_last_error(void);

/* ---- attention (flash-style, bf16; q [seq, batch, heads, head_dim], k/v [seq, batch, kv_heads, head_dim],
 *      lse [batch, heads, seq] float32; head_dim 64 or 128; heads % kv_heads == 0; scale > 0).
 *      Both directions run on compute capability 9.0 (Hopper, library built for sm_90a) and fail with
 *      MP_ERR_UNSUPPORTED elsewhere. ---- */
MP_API int mp_attention_fwd(void* o, float* lse, const void* q, const void* k, const void* v,
                            int batch, int seq, int heads, int kv_heads, int head_dim, int causal, float scale,
                            int dtype, void* stream);

/* Bytes of scratch mp_attention_bwd needs for these sizes; the workspace must be 256-byte aligned. */
MP_API int mp_attention_bwd_workspace_bytes(size_t* bytes, int batch, int seq, int heads, int kv_heads, int head_dim);

MP_API int mp_attention_bwd(void* dq, void* dk, void* dv, const void* dout, const void* q, const void* k,
                            const void* v, const void* o, const float* lse, void* workspace, size_t workspace_bytes,
                            int batch, int seq, int heads, int kv_heads, int head_dim, int causal, float scale,
                            int dtype, void* stream);

/* ---- norms fused with the residual add ----
 * sum = x + residual (residual and sum may both be null: then x is normalised as is);
 * y = norm(sum); stats = [rows] mean then [rows] rstd. bias only for LayerNorm (may be null). */
MP_API int mp_norm_fwd(int kind, void* y, void* sum, float* stats, const void* x, const void* residual,
                       const void* weight, const void* bias, int rows, int cols, float eps, int dtype, void* stream);

/* dx = backprop of dy through the norm (+ dresidual when not null); dweight, dbias (float32) accumulate. */
MP_API int mp_norm_bwd(int kind, void* dx, float* dweight, float* dbias, const void* dy, const void* dresidual,
                       const void* x, const void* weight, const float* stats, int rows, int cols, int dtype,
                       void* stream);

/* ---- activations ---- */
MP_API int mp_gelu_fwd(void* y, const void* x, int64_t count, int dtype, void* stream);
MP_API int mp_gelu_bwd(void* dx, const void* dy, const void* x, int64_t count, int dtype, void* stream);
/* gate_up [rows, 2*cols] (gate half then up half per row); y [rows, cols] = silu(gate) * up. */
MP_API int mp_swiglu_fwd(void* y, const void* gate_up, int rows, int cols, int dtype, void* stream);
MP_API int mp_swiglu_bwd(void* dgate_up, const void* dy, const void* gate_up, int rows, int cols, int dtype,
                         void* stream);

/* ---- rotary embedding, in place on x [seq, batch, heads, head_dim], rotate-half form ----
 * Pair i (elements i and i + head_dim/2) turns by position * inv_freq(i), position = s + position_offset,
 * inv_freq(i) = theta^(-2i/head_dim) (theta > 0), rescaled when llama3 is not null as Hugging Face's
 * rope_type "llama3" does: wavelen = 2 pi / inv_freq, low = original_max_positions / low_freq_factor,
 * high = original_max_positions / high_freq_factor; wavelen < high: unchanged; wavelen > low: inv_freq / factor;
 * otherwise smooth = (original_max_positions / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor),
 * inv_freq = (1 - smooth) * inv_freq / factor + smooth * inv_freq. Frequencies are computed in double.
 * backward != 0 applies the inverse rotation. */
typedef struct mp_rope_scaling {
    double factor;                 /* >= 1 */
    double low_freq_factor;        /* > 0 */
    double high_freq_factor;       /* > low_freq_factor */
    double original_max_positions; /* original_max_position_embeddings, > 0 */
} mp_rope_scaling;

MP_API int mp_rope(void* x, int seq, int batch, int heads, int head_dim, double theta, const mp_rope_scaling* llama3,
                   int position_offset, int backward, int dtype, void* stream);

/* ---- embedding: ids int32 [tokens], table [vocab_rows, hidden]; ids outside
 *      [vocab_start, vocab_start + vocab_rows) give zero rows / no gradient ---- */
MP_API int mp_embedding_fwd(void* out, const int32_t* ids, const void* table, int tokens, int hidden,
                            int vocab_start, int vocab_rows, int dtype, void* stream);
/* dtable float32, accumulates. */
MP_API int mp_embedding_bwd(float* dtable, const void* dout, const int32_t* ids, int tokens, int hidden,
                            int vocab_start, int vocab_rows, int dtype, void* stream);

/* ---- vocab-parallel cross-entropy pieces; logits [rows, cols] of this vocabulary shard ---- */
MP_API int mp_xent_row_max(float* row_max, const void* logits, int rows, int cols, int dtype, void* stream);
MP_API int mp_xent_sum_exp(float* sum_exp, float* target_logit, const void* logits, const float* row_max,
                           const int32_t* targets, int rows, int cols, int vocab_start, int dtype, void* stream);
MP_API int mp_xent_loss(float* loss, const float* row_max, const float* sum_exp, const float* target_logit,
                        int rows, void* stream);
MP_API int mp_xent_bwd(void* dlogits, const void* logits, const float* row_max, const float* sum_exp,
                       const int32_t* targets, int rows, int cols, int vocab_start, float scale, int dtype,
                       void* stream);

/* ---- AdamW on float32 master weights; grad float32; model (model_dtype) receives the new weights when not null ---- */
MP_API int mp_adamw_step(float* master, void* model, int model_dtype, const float* grad, float* m, float* v,
                         int64_t count, float lr, float beta1, float beta2, float eps, float weight_decay, int step,
                         void* stream);

/* ---- elementwise ---- */
MP_API int mp_add(void* y, const void* a, const void* b, int64_t count, int dtype, void* stream);
/* y = max(a, b) elementwise; NaN in either input gives NaN. y may alias a or b. */
MP_API int mp_elementwise_max(void* y, const void* a, const void* b, int64_t count, int dtype, void* stream);
/* y += alpha * x, with y and x in their own dtypes. */
MP_API int mp_axpy(void* y, int y_dtype, float alpha, const void* x, int x_dtype, int64_t count, void* stream);
/* y [rows, cols] += bias [cols]. */
MP_API int mp_add_bias(void* y, const void* bias, int rows, int cols, int dtype, void* stream);
/* dbias [cols] (float32) accumulates the column sums of dy [rows, cols]. */
MP_API int mp_bias_grad(float* dbias, const void* dy, int rows, int cols, int dtype, void* stream);
MP_API int mp_fill(void* t, int64_t count, double value, int dtype, void* stream);
MP_API int mp_convert(void* dst, int dst_dtype, const void* src, int src_dtype, int64_t count, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* MP_NATIVE_H */
