#include "status.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace mp {

namespace {
constexpr int kVersion = 0 * 10000 + 1 * 100 + 0;
thread_local char last_error[1024] = "";
}  // namespace

int set_error(int status, const char* file, int line, const char* format, ...) {
    const char* base = std::strrchr(file, '/');
    base = base != nullptr ? base + 1 : file;
    int used = std::snprintf(last_error, sizeof(last_error), "%s:%d: ", base, line);
    if (used < 0 || used >= static_cast<int>(sizeof(last_error))) used = 0;
    va_list args;
    va_start(args, format);
    std::vsnprintf(last_error + used, sizeof(last_error) - used, format, args);
    va_end(args);
    return status;
}

}  // namespace mp

extern "C" MP_API int mp_version_get(int* version) {
    MP_REQUIRE(version != nullptr, "version is null");
    *version = mp::kVersion;
    return MP_OK;
}

extern "C" MP_API const char* mp_last_error(void) { return mp::last_error; }
