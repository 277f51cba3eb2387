using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>A cublasLtMatmulPreference_t; released with cublasLtMatmulPreferenceDestroy.</summary>
internal sealed class MatmulPreferenceHandle(int device) : DeviceSafeHandle(device)
{
    protected override bool Release(nint value) =>
        CublasLt.MatmulPreferenceDestroy(value) == CublasLt.StatusSuccess;
}
