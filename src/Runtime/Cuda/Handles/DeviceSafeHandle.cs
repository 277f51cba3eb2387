using System.Runtime.InteropServices;

namespace ModelParallel.Runtime.Cuda;

/// <summary>A native object owned by one CUDA device; releasing it selects that device first.</summary>
internal abstract class DeviceSafeHandle : SafeHandle
{
    protected DeviceSafeHandle(int device)
        : base(0, ownsHandle: true)
    {
        Device = device;
    }

    public int Device { get; }

    public override bool IsInvalid => handle == 0;

    /// <summary>Adopts the native object; called once, right after the native create call succeeded.</summary>
    public void Adopt(nint value) => SetHandle(value);

    protected sealed override bool ReleaseHandle()
    {
        if (!DeviceScope.TryEnter(Device, out var scope))
        {
            return false;
        }
        using (scope)
        {
            return Release(handle);
        }
    }

    /// <summary>Frees the object with its device current; true on success.</summary>
    protected abstract bool Release(nint value);
}
