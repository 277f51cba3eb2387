using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>A cudaEvent_t; released with cudaEventDestroy.</summary>
internal sealed class EventHandle(int device) : DeviceSafeHandle(device)
{
    protected override bool Release(nint value) => CudaRuntime.EventDestroy(value) == CudaRuntime.Success;
}
