using System.Runtime.InteropServices;

namespace ModelParallel.Runtime.Cuda;

/// <summary>A block lent by a <see cref="CachingAllocator"/>: releasing it returns the block to the allocator's
/// cache (no CUDA call), so it may also be released by the finalizer.</summary>
internal sealed class DeviceBlockHandle : SafeHandle
{
    private readonly CachingAllocator _allocator;
    private readonly DeviceMemoryHandle _segment;

    public DeviceBlockHandle(CachingAllocator allocator, DeviceMemoryHandle segment)
        : base(0, ownsHandle: true)
    {
        _allocator = allocator;
        _segment = segment;
        SetHandle(segment.DangerousGetHandle());
    }

    public override bool IsInvalid => handle == 0;

    /// <summary>Bytes of the block (the request rounded to its size class).</summary>
    public long Bytes => _segment.Bytes;

    public int Device => _segment.Device;

    public nint Pointer => handle;

    protected override bool ReleaseHandle()
    {
        _allocator.Return(_segment);
        return true;
    }
}
