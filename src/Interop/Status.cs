using System.Runtime.InteropServices;

namespace ModelParallel.Interop;

/// <summary>
/// The one status funnel: every native status goes through a Check method, which throws the library's typed
/// exception carrying the numeric code, the library's symbolic name and its own message. When the library
/// itself cannot be loaded (so cannot describe its code), the names of the common codes come from the tables below.
/// </summary>
internal static unsafe class Status
{
    /// <summary>Throws <see cref="CudaException"/> unless <paramref name="code"/> is cudaSuccess.</summary>
    public static void CheckCuda(int code, string call)
    {
        if (code != CudaRuntime.Success)
        {
            throw Cuda(code, call);
        }
    }

    /// <summary>Throws <see cref="CudaException"/> unless the driver's <paramref name="code"/> is CUDA_SUCCESS.</summary>
    public static void CheckDriver(int code, string call)
    {
        if (code != 0)
        {
            throw Driver(code, call);
        }
    }

    /// <summary>Throws <see cref="CublasException"/> unless <paramref name="code"/> is CUBLAS_STATUS_SUCCESS.</summary>
    public static void CheckCublas(int code, string call)
    {
        if (code != CublasLt.StatusSuccess)
        {
            throw Cublas(code, call);
        }
    }

    /// <summary>Throws <see cref="NcclException"/> unless <paramref name="code"/> is ncclSuccess; the message adds
    /// ncclGetLastError's detail for <paramref name="comm"/> (which may be 0).</summary>
    public static void CheckNccl(int code, string call, nint comm = 0)
    {
        if (code != Nccl.Success)
        {
            throw NcclError(code, call, comm);
        }
    }

    /// <summary>Throws <see cref="NativeKernelException"/> unless <paramref name="code"/> is MP_OK; the message is
    /// mp_last_error()'s detail.</summary>
    public static void CheckNative(int code, string call)
    {
        if (code != MpNative.Ok)
        {
            throw Native(code, call);
        }
    }

    public static CudaException Cuda(int code, string call)
    {
        try
        {
            string name = Text(CudaRuntime.GetErrorName(code)) ?? $"cudaError {code}";
            string message = Text(CudaRuntime.GetErrorString(code)) ?? "unknown error";
            // A failing runtime call also sets the thread's last error; clear it so that later launch checks
            // (cudaGetLastError after a kernel launch) do not report this failure again.
            CudaRuntime.GetLastError();
            return new CudaException(call, code, name, message);
        }
        catch (DllNotFoundException)
        {
            var (name, message) = CudaNames(code);
            return new CudaException(call, code, name, message + " (libcudart not loaded; description from the CUDA documentation)");
        }
    }

    public static CudaException Driver(int code, string call)
    {
        try
        {
            byte* name = null;
            byte* message = null;
            CudaDriver.GetErrorName(code, &name);
            CudaDriver.GetErrorString(code, &message);
            return new CudaException(call, code, Text(name) ?? $"CUresult {code}", Text(message) ?? "unknown error");
        }
        catch (DllNotFoundException)
        {
            var (name, message) = CudaNames(code);
            return new CudaException(call, code, name, message + " (libcuda not loaded; description from the CUDA documentation)");
        }
    }

    public static CublasException Cublas(int code, string call)
    {
        try
        {
            string name = Text(CublasLt.GetStatusName(code)) ?? $"cublasStatus {code}";
            string message = Text(CublasLt.GetStatusString(code)) ?? "unknown status";
            return new CublasException(call, code, name, message);
        }
        catch (DllNotFoundException)
        {
            var (name, message) = CublasNames(code);
            return new CublasException(call, code, name, message + " (libcublasLt not loaded; description from the cuBLAS documentation)");
        }
    }

    public static NcclException NcclError(int code, string call, nint comm = 0)
    {
        string name = NcclNames(code).Name;
        try
        {
            string message = Text(Nccl.GetErrorString(code)) ?? "unknown result";
            string? detail = Text(Nccl.GetLastError(comm));
            if (!string.IsNullOrEmpty(detail))
            {
                message += ": " + detail;
            }
            return new NcclException(call, code, name, message);
        }
        catch (DllNotFoundException)
        {
            return new NcclException(call, code, name, NcclNames(code).Message + " (libnccl not loaded; description from the NCCL documentation)");
        }
    }

    public static NativeKernelException Native(int code, string call)
    {
        var (name, description) = NativeNames(code);
        try
        {
            string? detail = Text(MpNative.LastError());
            return new NativeKernelException(call, code, name, string.IsNullOrEmpty(detail) ? description : detail);
        }
        catch (DllNotFoundException)
        {
            return new NativeKernelException(call, code, name, description + " (libmpnative not loaded)");
        }
    }

    private static string? Text(byte* text) => text == null ? null : Marshal.PtrToStringUTF8((nint)text);

    private static (string Name, string Message) CudaNames(int code) => code switch
    {
        0 => ("cudaSuccess", "no error"),
        1 => ("cudaErrorInvalidValue", "invalid argument"),
        2 => ("cudaErrorMemoryAllocation", "out of memory"),
        3 => ("cudaErrorInitializationError", "initialization error"),
        35 => ("cudaErrorInsufficientDriver", "CUDA driver version is insufficient for CUDA runtime version"),
        100 => ("cudaErrorNoDevice", "no CUDA-capable device is detected"),
        101 => ("cudaErrorInvalidDevice", "invalid device ordinal"),
        209 => ("cudaErrorNoKernelImageForDevice", "no kernel image is available for execution on the device"),
        400 => ("cudaErrorInvalidResourceHandle", "invalid resource handle"),
        600 => ("cudaErrorNotReady", "device not ready"),
        700 => ("cudaErrorIllegalAddress", "an illegal memory access was encountered"),
        719 => ("cudaErrorLaunchFailure", "unspecified launch failure"),
        900 => ("cudaErrorStreamCaptureUnsupported", "operation not permitted when stream is capturing"),
        999 => ("cudaErrorUnknown", "unknown error"),
        _ => ($"cudaError {code}", "unrecognised error code"),
    };

    private static (string Name, string Message) CublasNames(int code) => code switch
    {
        0 => ("CUBLAS_STATUS_SUCCESS", "success"),
        1 => ("CUBLAS_STATUS_NOT_INITIALIZED", "the library was not initialized"),
        3 => ("CUBLAS_STATUS_ALLOC_FAILED", "the resource allocation failed"),
        7 => ("CUBLAS_STATUS_INVALID_VALUE", "an invalid numeric value was used as an argument"),
        8 => ("CUBLAS_STATUS_ARCH_MISMATCH", "an absent device architectural feature is required"),
        11 => ("CUBLAS_STATUS_MAPPING_ERROR", "an access to GPU memory space failed"),
        13 => ("CUBLAS_STATUS_EXECUTION_FAILED", "the GPU program failed to execute"),
        14 => ("CUBLAS_STATUS_INTERNAL_ERROR", "an internal operation failed"),
        15 => ("CUBLAS_STATUS_NOT_SUPPORTED", "the functionality requested is not supported"),
        _ => ($"cublasStatus {code}", "unrecognised status"),
    };

    private static (string Name, string Message) NcclNames(int code) => code switch
    {
        0 => ("ncclSuccess", "no error"),
        1 => ("ncclUnhandledCudaError", "unhandled cuda error (run with NCCL_DEBUG=INFO for details)"),
        2 => ("ncclSystemError", "unhandled system error (run with NCCL_DEBUG=INFO for details)"),
        3 => ("ncclInternalError", "internal error - please report this issue to the NCCL developers"),
        4 => ("ncclInvalidArgument", "invalid argument (run with NCCL_DEBUG=WARN for details)"),
        5 => ("ncclInvalidUsage", "invalid usage (run with NCCL_DEBUG=WARN for details)"),
        6 => ("ncclRemoteError", "remote process exited or there was a network error"),
        7 => ("ncclInProgress", "NCCL operation in progress"),
        _ => ($"ncclResult {code}", "unrecognised result"),
    };

    private static (string Name, string Message) NativeNames(int code) => code switch
    {
        0 => ("MP_OK", "no error"),
        1 => ("MP_ERR_INVALID_ARGUMENT", "a null pointer, a negative or unsupported size, or an unknown dtype"),
        2 => ("MP_ERR_UNSUPPORTED", "a valid request this build does not implement"),
        3 => ("MP_ERR_CUDA", "a CUDA runtime call or kernel launch failed"),
        4 => ("MP_ERR_INTERNAL", "internal error"),
        _ => ($"mp_status {code}", "unrecognised status"),
    };
}
