#include <atomic>

#include "dtype.cuh"

namespace mp {

const char* dtype_name(int dtype) {
    switch (dtype) {
        case MP_FLOAT32:
            return "float32";
        case MP_FLOAT64:
            return "float64";
        case MP_BFLOAT16:
            return "bfloat16";
        case MP_FLOAT16:
            return "float16";
        case MP_INT32:
            return "int32";
        default:
            return "unknown";
    }
}

int require_float_dtype(int dtype, const char* what) {
    if (dtype == MP_FLOAT32 || dtype == MP_BFLOAT16) return MP_OK;
    MP_FAIL(MP_ERR_INVALID_ARGUMENT, "%s: dtype %d (%s) is not supported (float32, bfloat16)", what, dtype,
            dtype_name(dtype));
}

int sm_count(int* count) {
    constexpr int kMaxDevices = 64;
    static std::atomic<int> cache[kMaxDevices] = {};
    int device = 0;
    MP_CHECK_CUDA(cudaGetDevice(&device));
    if (device >= 0 && device < kMaxDevices) {
        const int cached = cache[device].load(std::memory_order_relaxed);
        if (cached > 0) {
            *count = cached;
            return MP_OK;
        }
    }
    int sms = 0;
    MP_CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    if (device >= 0 && device < kMaxDevices) cache[device].store(sms, std::memory_order_relaxed);
    *count = sms;
    return MP_OK;
}

}  // namespace mp
