using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>A cublasLtMatrixLayout_t; released with cublasLtMatrixLayoutDestroy.</summary>
internal sealed class MatrixLayoutHandle(int device) : DeviceSafeHandle(device)
{
    protected override bool Release(nint value) => CublasLt.MatrixLayoutDestroy(value) == CublasLt.StatusSuccess;
}
