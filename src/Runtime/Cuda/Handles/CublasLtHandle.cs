using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>A cublasLtHandle_t; released with cublasLtDestroy.</summary>
internal sealed class CublasLtHandle(int device) : DeviceSafeHandle(device)
{
    protected override bool Release(nint value) => CublasLt.Destroy(value) == CublasLt.StatusSuccess;
}
