using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>A cudaGraph_t; released with cudaGraphDestroy.</summary>
internal sealed class GraphHandle(int device) : DeviceSafeHandle(device)
{
    protected override bool Release(nint value) => CudaRuntime.GraphDestroy(value) == CudaRuntime.Success;
}
