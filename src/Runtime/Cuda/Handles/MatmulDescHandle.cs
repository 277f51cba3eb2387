using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>A cublasLtMatmulDesc_t; released with cublasLtMatmulDescDestroy.</summary>
internal sealed class MatmulDescHandle(int device) : DeviceSafeHandle(device)
{
    protected override bool Release(nint value) => CublasLt.MatmulDescDestroy(value) == CublasLt.StatusSuccess;
}
