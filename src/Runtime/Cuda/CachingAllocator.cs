using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>
/// Device memory for one device, cached: a freed block goes back to a cache keyed by its size class and serves the
/// next request of that class without cudaMalloc or cudaFree (both of which synchronise the device).
/// Requests are rounded up to a multiple of 512 bytes up to 1 MiB and to a multiple of 2 MiB above.
/// A freed block may be handed out again at once: work using it must be issued on the same stream as the work of the
/// next owner (true of one backend, which issues everything on its one stream), or be complete.
/// When cudaMalloc runs out of memory the cache is emptied and the allocation retried once.
/// Thread-safe; blocks not disposed return to the cache when collected.
/// </summary>
public sealed unsafe class CachingAllocator : IDisposable
{
    public const long SmallLimit = 1L << 20;
    public const long SmallGranularity = 512;
    public const long LargeGranularity = 2L << 20;

    private readonly object _lock = new();
    private readonly Dictionary<long, Stack<DeviceMemoryHandle>> _cache = [];
    private long _inUse;
    private long _peak;
    private long _reserved;
    private long _allocations;
    private long _cacheHits;
    private bool _disposed;

    public CachingAllocator(int device)
    {
        Cuda.Device.Validate(device);
        Device = device;
    }

    public int Device { get; }

    /// <summary>Bytes in use (rounded sizes), their peak, bytes held from CUDA (in use plus cached), allocation
    /// requests and how many of them the cache served.</summary>
    public AllocatorStats Stats
    {
        get
        {
            lock (_lock)
            {
                return new AllocatorStats(_inUse, _peak, _reserved, _allocations, _cacheHits);
            }
        }
    }

    /// <summary>The size class of a request: what a block of <paramref name="bytes"/> really takes.</summary>
    public static long RoundSize(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        long granularity = bytes <= SmallLimit ? SmallGranularity : LargeGranularity;
        return (bytes + granularity - 1) / granularity * granularity;
    }

    /// <summary>Resets the peak to the bytes now in use.</summary>
    public void ResetPeak()
    {
        lock (_lock)
        {
            _peak = _inUse;
        }
    }

    /// <summary>Returns every cached (free) block to CUDA. Blocks in use are not affected.</summary>
    public void EmptyCache()
    {
        List<DeviceMemoryHandle> released = [];
        lock (_lock)
        {
            foreach (var stack in _cache.Values)
            {
                released.AddRange(stack);
                stack.Clear();
            }
            foreach (var segment in released)
            {
                _reserved -= segment.Bytes;
            }
        }
        foreach (var segment in released)
        {
            segment.Dispose();
        }
    }

    /// <summary>A block of at least <paramref name="bytes"/> (positive) bytes, 256-byte aligned.</summary>
    internal DeviceBlockHandle Allocate(long bytes)
    {
        long size = RoundSize(bytes);
        DeviceMemoryHandle? segment = null;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _allocations++;
            if (_cache.TryGetValue(size, out var stack) && stack.Count > 0)
            {
                segment = stack.Pop();
                _cacheHits++;
            }
        }
        if (segment is null)
        {
            segment = Malloc(size);
            lock (_lock)
            {
                _reserved += size;
            }
        }
        lock (_lock)
        {
            _inUse += size;
            _peak = Math.Max(_peak, _inUse);
        }
        return new DeviceBlockHandle(this, segment);
    }

    /// <summary>Called when a block is released: caches it, or frees it once the allocator is disposed.</summary>
    internal void Return(DeviceMemoryHandle segment)
    {
        bool free;
        lock (_lock)
        {
            _inUse -= segment.Bytes;
            free = _disposed;
            if (free)
            {
                _reserved -= segment.Bytes;
            }
            else
            {
                if (!_cache.TryGetValue(segment.Bytes, out var stack))
                {
                    stack = new Stack<DeviceMemoryHandle>();
                    _cache.Add(segment.Bytes, stack);
                }
                stack.Push(segment);
            }
        }
        if (free)
        {
            segment.Dispose();
        }
    }

    private DeviceMemoryHandle Malloc(long size)
    {
        Cuda.Device.MakeCurrent(Device);
        int code = TryMalloc(size, out var segment);
        if (code == CudaRuntime.ErrorMemoryAllocation)
        {
            CudaRuntime.GetLastError();
            EmptyCache();
            code = TryMalloc(size, out segment);
        }
        if (code != CudaRuntime.Success)
        {
            var stats = Stats;
            throw Status.Cuda(code, $"cudaMalloc({size} bytes) on cuda:{Device} (allocator: {stats.BytesInUse} bytes in use, " +
                $"{stats.BytesReserved} reserved after emptying the cache)");
        }
        return segment!;
    }

    private int TryMalloc(long size, out DeviceMemoryHandle? segment)
    {
        nint pointer;
        int code = CudaRuntime.Malloc(&pointer, (nuint)size);
        segment = null;
        if (code == CudaRuntime.Success)
        {
            segment = new DeviceMemoryHandle(Device, size);
            segment.Adopt(pointer);
        }
        return code;
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
        }
        EmptyCache();
    }
}
