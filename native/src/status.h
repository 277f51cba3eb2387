// Status codes and the thread-local error detail behind mp_last_error().
#pragma once

#include <cuda_runtime.h>

#include <exception>

#include "mp_native.h"

namespace mp {

// Records "file:line: message" as this thread's last error and returns status.
int set_error(int status, const char* file, int line, const char* format, ...) __attribute__((format(printf, 4, 5)));

}  // namespace mp

// Returns status from the enclosing function with a printf-style detail.
#define MP_FAIL(status, ...) return ::mp::set_error((status), __FILE__, __LINE__, __VA_ARGS__)

// Fails with MP_ERR_INVALID_ARGUMENT unless cond holds.
#define MP_REQUIRE(cond, ...)                                       \
    do {                                                            \
        if (!(cond)) MP_FAIL(MP_ERR_INVALID_ARGUMENT, __VA_ARGS__); \
    } while (0)

// Fails with MP_ERR_CUDA when a CUDA runtime call fails.
#define MP_CHECK_CUDA(expr)                                                                                            \
    do {                                                                                                               \
        const cudaError_t mp_err_ = (expr);                                                                            \
        if (mp_err_ != cudaSuccess)                                                                                    \
            MP_FAIL(MP_ERR_CUDA, "%s failed: %s (%s)", #expr, cudaGetErrorName(mp_err_), cudaGetErrorString(mp_err_)); \
    } while (0)

// Checks the kernel launch just made.
#define MP_CHECK_LAUNCH(kernel_name)                                                                     \
    do {                                                                                                 \
        const cudaError_t mp_err_ = cudaGetLastError();                                                  \
        if (mp_err_ != cudaSuccess)                                                                      \
            MP_FAIL(MP_ERR_CUDA, "launch of %s failed: %s (%s)", kernel_name, cudaGetErrorName(mp_err_), \
                    cudaGetErrorString(mp_err_));                                                        \
    } while (0)

// Propagates a non-OK status from a helper.
#define MP_TRY(expr)                                \
    do {                                            \
        const int mp_status_ = (expr);              \
        if (mp_status_ != MP_OK) return mp_status_; \
    } while (0)

// Wraps the body of every export: no C++ exception crosses the ABI.
#define MP_EXPORT_BEGIN try {
#define MP_EXPORT_END                                                   \
    }                                                                   \
    catch (const std::exception& e) {                                   \
        MP_FAIL(MP_ERR_INTERNAL, "unexpected exception: %s", e.what()); \
    }                                                                   \
    catch (...) {                                                       \
        MP_FAIL(MP_ERR_INTERNAL, "unexpected non-standard exception");  \
    }
