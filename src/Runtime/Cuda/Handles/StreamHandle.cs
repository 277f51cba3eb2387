using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>A cudaStream_t; released with cudaStreamDestroy.</summary>
internal sealed class StreamHandle(int device) : DeviceSafeHandle(device)
{
    protected override bool Release(nint value) => CudaRuntime.StreamDestroy(value) == CudaRuntime.Success;
}
