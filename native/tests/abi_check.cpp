// Compile-only check: the exports of mp_native.h have exactly the signatures that
// src/Interop/MpNative.cs declares (nint -> pointer, nuint -> size_t, long -> int64_t).
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "mp_native.h"

#define MP_EXPECT(fn, type) static_assert(std::is_same_v<decltype(&fn), type>, #fn " does not match MpNative.cs")

MP_EXPECT(mp_version_get, int (*)(int*));
MP_EXPECT(mp_last_error, const char* (*)(void));
MP_EXPECT(mp_attention_fwd, int (*)(void*, float*, const void*, const void*, const void*, int, int, int, int, int, int,
                                    float, int, void*));
MP_EXPECT(mp_attention_bwd_workspace_bytes, int (*)(size_t*, int, int, int, int, int));
MP_EXPECT(mp_attention_bwd,
          int (*)(void*, void*, void*, const void*, const void*, const void*, const void*, const void*, const float*,
                  void*, size_t, int, int, int, int, int, int, float, int, void*));
MP_EXPECT(mp_norm_fwd, int (*)(int, void*, void*, float*, const void*, const void*, const void*, const void*, int, int,
                               float, int, void*));
MP_EXPECT(mp_norm_bwd, int (*)(int, void*, float*, float*, const void*, const void*, const void*, const void*,
                               const float*, int, int, int, void*));
MP_EXPECT(mp_gelu_fwd, int (*)(void*, const void*, int64_t, int, void*));
MP_EXPECT(mp_gelu_bwd, int (*)(void*, const void*, const void*, int64_t, int, void*));
MP_EXPECT(mp_swiglu_fwd, int (*)(void*, const void*, int, int, int, void*));
MP_EXPECT(mp_swiglu_bwd, int (*)(void*, const void*, const void*, int, int, int, void*));
MP_EXPECT(mp_rope, int (*)(void*, int, int, int, int, double, const mp_rope_scaling*, int, int, int, void*));
MP_EXPECT(mp_embedding_fwd, int (*)(void*, const int32_t*, const void*, int, int, int, int, int, void*));
MP_EXPECT(mp_embedding_bwd, int (*)(float*, const void*, const int32_t*, int, int, int, int, int, void*));
MP_EXPECT(mp_xent_row_max, int (*)(float*, const void*, int, int, int, void*));
MP_EXPECT(mp_xent_sum_exp,
          int (*)(float*, float*, const void*, const float*, const int32_t*, int, int, int, int, void*));
MP_EXPECT(mp_xent_loss, int (*)(float*, const float*, const float*, const float*, int, void*));
MP_EXPECT(mp_xent_bwd,
          int (*)(void*, const void*, const float*, const float*, const int32_t*, int, int, int, float, int, void*));
MP_EXPECT(mp_adamw_step, int (*)(float*, void*, int, const float*, float*, float*, int64_t, float, float, float, float,
                                 float, int, void*));
MP_EXPECT(mp_add, int (*)(void*, const void*, const void*, int64_t, int, void*));
MP_EXPECT(mp_elementwise_max, int (*)(void*, const void*, const void*, int64_t, int, void*));
MP_EXPECT(mp_axpy, int (*)(void*, int, float, const void*, int, int64_t, void*));
MP_EXPECT(mp_add_bias, int (*)(void*, const void*, int, int, int, void*));
MP_EXPECT(mp_bias_grad, int (*)(float*, const void*, int, int, int, void*));
MP_EXPECT(mp_fill, int (*)(void*, int64_t, double, int, void*));
MP_EXPECT(mp_convert, int (*)(void*, int, const void*, int, int64_t, void*));

static_assert(MP_OK == 0 && MP_ERR_INVALID_ARGUMENT == 1 && MP_ERR_UNSUPPORTED == 2 && MP_ERR_CUDA == 3 &&
                  MP_ERR_INTERNAL == 4,
              "status codes");
static_assert(MP_FLOAT32 == 0 && MP_FLOAT64 == 1 && MP_BFLOAT16 == 2 && MP_FLOAT16 == 3 && MP_INT32 == 4,
              "dtype codes follow src/Runtime/DType.cs");
static_assert(MP_RMSNORM == 0 && MP_LAYERNORM == 1, "norm kinds follow NormKind");
static_assert(sizeof(mp_rope_scaling) == 32 && offsetof(mp_rope_scaling, factor) == 0 &&
                  offsetof(mp_rope_scaling, low_freq_factor) == 8 && offsetof(mp_rope_scaling, high_freq_factor) == 16 &&
                  offsetof(mp_rope_scaling, original_max_positions) == 24,
              "mp_rope_scaling follows src/Interop/MpRopeScaling.cs (StructLayoutTests)");
