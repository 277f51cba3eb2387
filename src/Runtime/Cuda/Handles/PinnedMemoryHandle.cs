using System.Runtime.InteropServices;
using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>Page-locked host memory from cudaHostAlloc; released with cudaFreeHost.</summary>
internal sealed class PinnedMemoryHandle : SafeHandle
{
    public PinnedMemoryHandle()
        : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    public void Adopt(nint value) => SetHandle(value);

    protected override bool ReleaseHandle() => CudaRuntime.FreeHost(handle) == CudaRuntime.Success;
}
