// Vocabulary-sharded embedding lookup and its (accumulating, float32) table gradient.
#include "dtype.cuh"

namespace mp {
namespace embedding {

constexpr int kThreads = 128;

// One block per token (grid-stride); rows outside this shard's vocabulary are zero.
template <int N, typename T>
__global__ void embedding_fwd_kernel(T* out, const int32_t* ids, const T* table, int tokens, int hidden,
                                     int vocab_start, int vocab_rows) {
    for (int t = blockIdx.x; t < tokens; t += gridDim.x) {
        const int64_t row = static_cast<int64_t>(ids[t]) - vocab_start;
        const bool inside = row >= 0 && row < vocab_rows;
        T* dst = out + static_cast<int64_t>(t) * hidden;
        const T* src = table + (inside ? row : 0) * hidden;
        for (int j = threadIdx.x * N; j < hidden; j += blockDim.x * N) {
            Vec<T, N> v;
            if (inside) {
                v = load_vec<N>(src + j);
            } else {
#pragma unroll
                for (int k = 0; k < N; ++k) v.v[k] = from_float<T>(0.f);
            }
            store_vec<N>(dst + j, v);
        }
    }
}

template <int N, typename T>
__global__ void embedding_bwd_kernel(float* dtable, const T* dout, const int32_t* ids, int tokens, int hidden,
                                     int vocab_start, int vocab_rows) {
    for (int t = blockIdx.x; t < tokens; t += gridDim.x) {
        const int64_t row = static_cast<int64_t>(ids[t]) - vocab_start;
        if (row < 0 || row >= vocab_rows) continue;
        const T* src = dout + static_cast<int64_t>(t) * hidden;
        float* dst = dtable + row * hidden;
        for (int j = threadIdx.x * N; j < hidden; j += blockDim.x * N) {
            const Vec<T, N> v = load_vec<N>(src + j);
#pragma unroll
            for (int k = 0; k < N; ++k) atomicAdd(dst + j + k, to_float(v.v[k]));
        }
    }
}

template <typename T>
int embedding_fwd_typed(TypeTag<T>, void* out, const int32_t* ids, const void* table, int tokens, int hidden,
                        int vocab_start, int vocab_rows, cudaStream_t stream) {
    int sms = 0;
    MP_TRY(sm_count(&sms));
    const int blocks = tokens < sms * 16 ? tokens : sms * 16;
    constexpr int N = kVec16<T>;
    T* o = static_cast<T*>(out);
    const T* tab = static_cast<const T*>(table);
    if (hidden % N == 0 && aligned_to(out, 16) && aligned_to(table, 16)) {
        embedding_fwd_kernel<N, T>
            <<<blocks, kThreads, 0, stream>>>(o, ids, tab, tokens, hidden, vocab_start, vocab_rows);
    } else {
        embedding_fwd_kernel<1, T>
            <<<blocks, kThreads, 0, stream>>>(o, ids, tab, tokens, hidden, vocab_start, vocab_rows);
    }
    MP_CHECK_LAUNCH("embedding_fwd_kernel");
    return MP_OK;
}

template <typename T>
int embedding_bwd_typed(TypeTag<T>, float* dtable, const void* dout, const int32_t* ids, int tokens, int hidden,
                        int vocab_start, int vocab_rows, cudaStream_t stream) {
    int sms = 0;
    MP_TRY(sm_count(&sms));
    const int blocks = tokens < sms * 16 ? tokens : sms * 16;
    constexpr int N = kVec16<T>;
    const T* d = static_cast<const T*>(dout);
    if (hidden % N == 0 && aligned_to(dout, 16)) {
        embedding_bwd_kernel<N, T>
            <<<blocks, kThreads, 0, stream>>>(dtable, d, ids, tokens, hidden, vocab_start, vocab_rows);
    } else {
        embedding_bwd_kernel<1, T>
            <<<blocks, kThreads, 0, stream>>>(dtable, d, ids, tokens, hidden, vocab_start, vocab_rows);
    }
    MP_CHECK_LAUNCH("embedding_bwd_kernel");
    return MP_OK;
}

}  // namespace embedding
}  // namespace mp

using namespace mp;
using namespace mp::embedding;

extern "C" MP_API int mp_embedding_fwd(void* out, const int32_t* ids, const void* table, int tokens, int hidden,
                                       int vocab_start, int vocab_rows, int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(tokens >= 0, "mp_embedding_fwd: tokens %d is negative", tokens);
    MP_REQUIRE(hidden > 0, "mp_embedding_fwd: hidden %d is not positive", hidden);
    MP_REQUIRE(vocab_rows >= 0, "mp_embedding_fwd: vocab_rows %d is negative", vocab_rows);
    MP_REQUIRE(tokens == 0 || (out && ids), "mp_embedding_fwd: null pointer (out=%p ids=%p)", out,
               static_cast<const void*>(ids));
    MP_REQUIRE(tokens == 0 || vocab_rows == 0 || table, "mp_embedding_fwd: table is null");
    if (tokens == 0) return require_float_dtype(dtype, "mp_embedding_fwd");
    MP_DISPATCH_FLOAT(dtype, "mp_embedding_fwd", embedding_fwd_typed, out, ids, table, tokens, hidden, vocab_start,
                      vocab_rows, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}

extern "C" MP_API int mp_embedding_bwd(float* dtable, const void* dout, const int32_t* ids, int tokens, int hidden,
                                       int vocab_start, int vocab_rows, int dtype, void* stream) {
    MP_EXPORT_BEGIN
    MP_REQUIRE(tokens >= 0, "mp_embedding_bwd: tokens %d is negative", tokens);
    MP_REQUIRE(hidden > 0, "mp_embedding_bwd: hidden %d is not positive", hidden);
    MP_REQUIRE(vocab_rows >= 0, "mp_embedding_bwd: vocab_rows %d is negative", vocab_rows);
    MP_REQUIRE(tokens == 0 || (dout && ids), "mp_embedding_bwd: null pointer (dout=%p ids=%p)", dout,
               static_cast<const void*>(ids));
    MP_REQUIRE(tokens == 0 || vocab_rows == 0 || dtable, "mp_embedding_bwd: dtable is null");
    if (tokens == 0 || vocab_rows == 0) return require_float_dtype(dtype, "mp_embedding_bwd");
    MP_DISPATCH_FLOAT(dtype, "mp_embedding_bwd", embedding_bwd_typed, dtable, dout, ids, tokens, hidden, vocab_start,
                      vocab_rows, static_cast<cudaStream_t>(stream));
    MP_EXPORT_END
}
