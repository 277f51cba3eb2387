using System.Text;
using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>The CUDA devices of this process (as CUDA_VISIBLE_DEVICES shows them): count, properties, peer access.</summary>
public static unsafe class Device
{
    /// <summary>Number of devices; 0 when the driver reports none. Throws <see cref="CudaException"/> for a broken
    /// installation and <see cref="NativeLibraryNotFoundException"/> without the CUDA runtime
    /// (<see cref="CudaBackend.TryGetDeviceCount"/> never throws).</summary>
    public static int Count
    {
        get
        {
            int count;
            int code = CudaRuntime.GetDeviceCount(&count);
            if (code == CudaRuntime.ErrorNoDevice)
            {
                CudaRuntime.GetLastError();
                return 0;
            }
            Status.CheckCuda(code, "cudaGetDeviceCount");
            return count;
        }
    }

    public static DeviceProperties GetProperties(int device)
    {
        Validate(device);
        Status.CheckDriver(CudaDriver.Init(0), "cuInit");
        int handle;
        Status.CheckDriver(CudaDriver.DeviceGet(&handle, device), $"cuDeviceGet({device})");
        const int nameLength = 256;
        byte* name = stackalloc byte[nameLength];
        Status.CheckDriver(CudaDriver.DeviceGetName(name, nameLength, handle), $"cuDeviceGetName({device})");
        nuint totalBytes;
        Status.CheckDriver(CudaDriver.DeviceTotalMem(&totalBytes, handle), $"cuDeviceTotalMem({device})");
        var nameBytes = new ReadOnlySpan<byte>(name, nameLength);
        int end = nameBytes.IndexOf((byte)0);
        return new DeviceProperties(
            device,
            Encoding.UTF8.GetString(end < 0 ? nameBytes : nameBytes[..end]),
            (long)totalBytes,
            Attribute(device, CudaRuntime.AttrMultiProcessorCount, "multiProcessorCount"),
            Attribute(device, CudaRuntime.AttrComputeCapabilityMajor, "computeCapabilityMajor"),
            Attribute(device, CudaRuntime.AttrComputeCapabilityMinor, "computeCapabilityMinor"),
            Attribute(device, CudaRuntime.AttrL2CacheSize, "l2CacheSize"));
    }

    /// <summary>Whether <paramref name="device"/> can map <paramref name="peer"/>'s memory (false for itself).</summary>
    public static bool CanAccessPeer(int device, int peer)
    {
        Validate(device);
        Validate(peer);
        if (device == peer)
        {
            return false;
        }
        int can;
        Status.CheckCuda(CudaRuntime.DeviceCanAccessPeer(&can, device, peer), $"cudaDeviceCanAccessPeer({device}, {peer})");
        return can != 0;
    }

    /// <summary>[i, j] = device i can access device j's memory.</summary>
    public static bool[,] PeerAccessMatrix()
    {
        int count = Count;
        var matrix = new bool[count, count];
        for (int i = 0; i < count; i++)
        {
            for (int j = 0; j < count; j++)
            {
                matrix[i, j] = CanAccessPeer(i, j);
            }
        }
        return matrix;
    }

    /// <summary>Lets kernels on <paramref name="device"/> read and write <paramref name="peer"/>'s memory
    /// (idempotent). Throws <see cref="InvalidOperationException"/> when the pair cannot access each other.</summary>
    public static void EnablePeerAccess(int device, int peer)
    {
        if (!CanAccessPeer(device, peer))
        {
            throw new InvalidOperationException($"cuda:{device} cannot access the memory of cuda:{peer}");
        }
        MakeCurrent(device);
        int code = CudaRuntime.DeviceEnablePeerAccess(peer, 0);
        if (code == CudaRuntime.ErrorPeerAccessAlreadyEnabled)
        {
            CudaRuntime.GetLastError();
            return;
        }
        Status.CheckCuda(code, $"cudaDeviceEnablePeerAccess(cuda:{device} -> cuda:{peer})");
    }

    /// <summary>Free and total bytes of the device's memory.</summary>
    public static (long FreeBytes, long TotalBytes) MemoryInfo(int device)
    {
        MakeCurrent(device);
        nuint free, total;
        Status.CheckCuda(CudaRuntime.MemGetInfo(&free, &total), $"cudaMemGetInfo(cuda:{device})");
        return ((long)free, (long)total);
    }

    /// <summary>Waits until every stream of the device is idle.</summary>
    public static void Synchronize(int device)
    {
        MakeCurrent(device);
        Status.CheckCuda(CudaRuntime.DeviceSynchronize(), $"cudaDeviceSynchronize(cuda:{device})");
    }

    /// <summary>Makes <paramref name="device"/> the calling thread's current device.</summary>
    internal static void MakeCurrent(int device)
    {
        int current;
        Status.CheckCuda(CudaRuntime.GetDevice(&current), "cudaGetDevice");
        if (current != device)
        {
            Status.CheckCuda(CudaRuntime.SetDevice(device), $"cudaSetDevice({device})");
        }
    }

    internal static void Validate(int device)
    {
        int count = Count;
        if (device < 0 || device >= count)
        {
            throw new ArgumentOutOfRangeException(nameof(device), device,
                count == 0 ? "no CUDA device is present" : $"device ordinals are 0 to {count - 1}");
        }
    }

    private static int Attribute(int device, int attribute, string name)
    {
        int value;
        Status.CheckCuda(CudaRuntime.DeviceGetAttribute(&value, attribute, device), $"cudaDeviceGetAttribute({name}, {device})");
        return value;
    }
}
