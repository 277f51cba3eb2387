using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>Memory from cudaMalloc; released with cudaFree.</summary>
internal sealed class DeviceMemoryHandle(int device, long bytes) : DeviceSafeHandle(device)
{
    public long Bytes { get; } = bytes;

    protected override bool Release(nint value) => CudaRuntime.Free(value) == CudaRuntime.Success;
}
