using System.Runtime.InteropServices;

namespace ModelParallel.Interop;

/// <summary>Declarations of the CUDA runtime (libcudart.so). Every function returns a cudaError_t (0 = success).</summary>
internal static unsafe partial class CudaRuntime
{
    public const string Library = "cudart";

    public const int Success = 0;
    public const int ErrorMemoryAllocation = 2;
    public const int ErrorInsufficientDriver = 35;
    public const int ErrorNoDevice = 100;
    public const int ErrorNotReady = 600;
    public const int ErrorPeerAccessAlreadyEnabled = 704;

    // cudaDeviceAttr
    public const int AttrMultiProcessorCount = 16;
    public const int AttrL2CacheSize = 38;
    public const int AttrMaxSharedMemoryPerBlockOptin = 97;
    public const int AttrComputeCapabilityMajor = 75;
    public const int AttrComputeCapabilityMinor = 76;

    // cudaMemcpyKind
    public const int MemcpyHostToDevice = 1;
    public const int MemcpyDeviceToHost = 2;
    public const int MemcpyDeviceToDevice = 3;
    public const int MemcpyDefault = 4;

    public const uint HostAllocPortable = 0x01;
    public const uint StreamNonBlocking = 0x01;
    public const uint EventDefault = 0x00;
    public const uint EventDisableTiming = 0x02;
    public const uint IpcMemLazyEnablePeerAccess = 0x01;

    // cudaStreamCaptureMode
    public const int StreamCaptureModeThreadLocal = 1;

    [LibraryImport(Library, EntryPoint = "cudaDriverGetVersion")]
    public static partial int DriverGetVersion(int* version);

    [LibraryImport(Library, EntryPoint = "cudaRuntimeGetVersion")]
    public static partial int RuntimeGetVersion(int* version);

    [LibraryImport(Library, EntryPoint = "cudaGetDeviceCount")]
    public static partial int GetDeviceCount(int* count);

    [LibraryImport(Library, EntryPoint = "cudaDeviceGetAttribute")]
    public static partial int DeviceGetAttribute(int* value, int attribute, int device);

    [LibraryImport(Library, EntryPoint = "cudaSetDevice")]
    public static partial int SetDevice(int device);

    [LibraryImport(Library, EntryPoint = "cudaGetDevice")]
    public static partial int GetDevice(int* device);

    [LibraryImport(Library, EntryPoint = "cudaDeviceSynchronize")]
    public static partial int DeviceSynchronize();

    [LibraryImport(Library, EntryPoint = "cudaMemGetInfo")]
    public static partial int MemGetInfo(nuint* free, nuint* total);

    [LibraryImport(Library, EntryPoint = "cudaMalloc")]
    public static partial int Malloc(nint* pointer, nuint bytes);

    [LibraryImport(Library, EntryPoint = "cudaFree")]
    public static partial int Free(nint pointer);

    [LibraryImport(Library, EntryPoint = "cudaMemset")]
    public static partial int Memset(nint pointer, int value, nuint bytes);

    [LibraryImport(Library, EntryPoint = "cudaMemsetAsync")]
    public static partial int MemsetAsync(nint pointer, int value, nuint bytes, nint stream);

    [LibraryImport(Library, EntryPoint = "cudaMemcpy")]
    public static partial int Memcpy(nint dst, nint src, nuint bytes, int kind);

    [LibraryImport(Library, EntryPoint = "cudaMemcpyAsync")]
    public static partial int MemcpyAsync(nint dst, nint src, nuint bytes, int kind, nint stream);

    [LibraryImport(Library, EntryPoint = "cudaMemcpy2DAsync")]
    public static partial int Memcpy2DAsync(nint dst, nuint dstPitchBytes, nint src, nuint srcPitchBytes,
        nuint widthBytes, nuint height, int kind, nint stream);

    [LibraryImport(Library, EntryPoint = "cudaHostAlloc")]
    public static partial int HostAlloc(nint* pointer, nuint bytes, uint flags);

    [LibraryImport(Library, EntryPoint = "cudaFreeHost")]
    public static partial int FreeHost(nint pointer);

    [LibraryImport(Library, EntryPoint = "cudaDeviceGetStreamPriorityRange")]
    public static partial int DeviceGetStreamPriorityRange(int* leastPriority, int* greatestPriority);

    [LibraryImport(Library, EntryPoint = "cudaStreamCreateWithPriority")]
    public static partial int StreamCreateWithPriority(nint* stream, uint flags, int priority);

    [LibraryImport(Library, EntryPoint = "cudaStreamDestroy")]
    public static partial int StreamDestroy(nint stream);

    [LibraryImport(Library, EntryPoint = "cudaStreamSynchronize")]
    public static partial int StreamSynchronize(nint stream);

    /// <summary>Success when all work on the stream is done, <see cref="ErrorNotReady"/> while some is pending.</summary>
    [LibraryImport(Library, EntryPoint = "cudaStreamQuery")]
    public static partial int StreamQuery(nint stream);

    [LibraryImport(Library, EntryPoint = "cudaStreamWaitEvent")]
    public static partial int StreamWaitEvent(nint stream, nint cudaEvent, uint flags);

    [LibraryImport(Library, EntryPoint = "cudaEventCreateWithFlags")]
    public static partial int EventCreateWithFlags(nint* cudaEvent, uint flags);

    [LibraryImport(Library, EntryPoint = "cudaEventRecord")]
    public static partial int EventRecord(nint cudaEvent, nint stream);

    [LibraryImport(Library, EntryPoint = "cudaEventSynchronize")]
    public static partial int EventSynchronize(nint cudaEvent);

    /// <summary>Success when the recorded work is done, <see cref="ErrorNotReady"/> while it is pending.</summary>
    [LibraryImport(Library, EntryPoint = "cudaEventQuery")]
    public static partial int EventQuery(nint cudaEvent);

    [LibraryImport(Library, EntryPoint = "cudaEventElapsedTime")]
    public static partial int EventElapsedTime(float* milliseconds, nint start, nint end);

    [LibraryImport(Library, EntryPoint = "cudaEventDestroy")]
    public static partial int EventDestroy(nint cudaEvent);

    [LibraryImport(Library, EntryPoint = "cudaDeviceCanAccessPeer")]
    public static partial int DeviceCanAccessPeer(int* canAccess, int device, int peerDevice);

    /// <summary>Enables access from the current device to <paramref name="peerDevice"/>'s memory.</summary>
    [LibraryImport(Library, EntryPoint = "cudaDeviceEnablePeerAccess")]
    public static partial int DeviceEnablePeerAccess(int peerDevice, uint flags);

    [LibraryImport(Library, EntryPoint = "cudaIpcGetMemHandle")]
    public static partial int IpcGetMemHandle(CudaIpcMemHandle* handle, nint devicePointer);

    [LibraryImport(Library, EntryPoint = "cudaIpcOpenMemHandle")]
    public static partial int IpcOpenMemHandle(nint* devicePointer, CudaIpcMemHandle handle, uint flags);

    [LibraryImport(Library, EntryPoint = "cudaIpcCloseMemHandle")]
    public static partial int IpcCloseMemHandle(nint devicePointer);

    [LibraryImport(Library, EntryPoint = "cudaStreamBeginCapture")]
    public static partial int StreamBeginCapture(nint stream, int mode);

    /// <summary>pCaptureStatus: 0 none, 1 active, 2 invalidated (cudaStreamCaptureStatus).</summary>
    [LibraryImport(Library, EntryPoint = "cudaStreamIsCapturing")]
    public static partial int StreamIsCapturing(nint stream, int* captureStatus);

    [LibraryImport(Library, EntryPoint = "cudaStreamEndCapture")]
    public static partial int StreamEndCapture(nint stream, nint* graph);

    [LibraryImport(Library, EntryPoint = "cudaGraphInstantiateWithFlags")]
    public static partial int GraphInstantiateWithFlags(nint* graphExec, nint graph, ulong flags);

    [LibraryImport(Library, EntryPoint = "cudaGraphLaunch")]
    public static partial int GraphLaunch(nint graphExec, nint stream);

    [LibraryImport(Library, EntryPoint = "cudaGraphDestroy")]
    public static partial int GraphDestroy(nint graph);

    [LibraryImport(Library, EntryPoint = "cudaGraphExecDestroy")]
    public static partial int GraphExecDestroy(nint graphExec);

    /// <summary>Returns and clears the last error of the calling thread.</summary>
    [LibraryImport(Library, EntryPoint = "cudaGetLastError")]
    public static partial int GetLastError();

    [LibraryImport(Library, EntryPoint = "cudaGetErrorName")]
    public static partial byte* GetErrorName(int error);

    [LibraryImport(Library, EntryPoint = "cudaGetErrorString")]
    public static partial byte* GetErrorString(int error);
}
