using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>A cudaGraphExec_t; released with cudaGraphExecDestroy.</summary>
internal sealed class GraphExecHandle(int device) : DeviceSafeHandle(device)
{
    protected override bool Release(nint value) => CudaRuntime.GraphExecDestroy(value) == CudaRuntime.Success;
}
