using System.Runtime.InteropServices;

namespace ModelParallel.Interop;

/// <summary>Declarations of the CUDA driver API (libcuda.so.1) used where the runtime API has no stable route:
/// the device name, without depending on the version-specific layout of cudaDeviceProp. Every function returns a
/// CUresult (0 = success).</summary>
internal static unsafe partial class CudaDriver
{
    public const string Library = "cuda";

    [LibraryImport(Library, EntryPoint = "cuInit")]
    public static partial int Init(uint flags);

    /// <summary>The driver's device handle for a runtime ordinal.</summary>
    [LibraryImport(Library, EntryPoint = "cuDeviceGet")]
    public static partial int DeviceGet(int* device, int ordinal);

    [LibraryImport(Library, EntryPoint = "cuDeviceGetName")]
    public static partial int DeviceGetName(byte* name, int length, int device);

    [LibraryImport(Library, EntryPoint = "cuDeviceTotalMem_v2")]
    public static partial int DeviceTotalMem(nuint* bytes, int device);

    [LibraryImport(Library, EntryPoint = "cuGetErrorName")]
    public static partial int GetErrorName(int error, byte** name);

    [LibraryImport(Library, EntryPoint = "cuGetErrorString")]
    public static partial int GetErrorString(int error, byte** message);
}
