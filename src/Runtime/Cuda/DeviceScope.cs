using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>Makes a device current on the calling thread and restores the previous one on dispose
/// (used where a resource is freed, possibly from another device's thread or the finalizer).</summary>
internal readonly unsafe ref struct DeviceScope
{
    private readonly int _previous;

    private DeviceScope(int previous) => _previous = previous;

    /// <summary>Selects <paramref name="device"/>; returns false (and selects nothing) when the runtime refuses.</summary>
    public static bool TryEnter(int device, out DeviceScope scope)
    {
        int current;
        scope = default;
        if (CudaRuntime.GetDevice(&current) != CudaRuntime.Success)
        {
            return false;
        }
        if (current != device && CudaRuntime.SetDevice(device) != CudaRuntime.Success)
        {
            return false;
        }
        scope = new DeviceScope(current);
        return true;
    }

    public void Dispose() => CudaRuntime.SetDevice(_previous);
}
