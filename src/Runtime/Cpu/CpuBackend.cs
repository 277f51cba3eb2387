namespace ModelParallel.Runtime.Cpu;

/// <summary>
/// The CPU reference backend: managed arrays, kernels computed on the host in float32 or float64,
/// work completed on return. Every dtype role (gradients, statistics, master weights) is the compute dtype.
/// New tensors are filled with NaN (Int32: int.MinValue) so that reading an element never written shows up.
/// </summary>
public sealed class CpuBackend : IBackend
{
    private long _bytesInUse;
    private long _peakBytesInUse;
    private long _allocations;
    private bool _disposed;

    public CpuBackend(DType compute)
    {
        ValidateCompute(compute);
        Compute = compute;
        Kernels = new CpuKernels(this);
    }

    public BackendKind Kind => BackendKind.Cpu;

    public string Name => Compute == DType.Float32 ? "cpu-float32" : "cpu-float64";

    public DType Compute { get; }

    public DType GradType => Compute;

    public DType StatsType => Compute;

    public DType MasterType => Compute;

    public IKernels Kernels { get; }

    public AllocatorStats AllocatorStats =>
        new(Interlocked.Read(ref _bytesInUse), Interlocked.Read(ref _peakBytesInUse), Interlocked.Read(ref _bytesInUse),
            Interlocked.Read(ref _allocations), 0);

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="compute"/> is Float32 or Float64.</summary>
    internal static void ValidateCompute(DType compute)
    {
        if (compute is not (DType.Float32 or DType.Float64))
        {
            throw new ArgumentException($"the CPU backend computes in Float32 or Float64, not {compute}", nameof(compute));
        }
    }

    public Tensor Allocate(DType dtype, long count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (count < 0 || count > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"a CPU tensor holds 0 to {Array.MaxLength} elements");
        }
        int length = (int)count;
        Array storage = dtype switch
        {
            DType.Float32 => Filled(length, float.NaN),
            DType.Float64 => Filled(length, double.NaN),
            DType.Int32 => Filled(length, int.MinValue),
            _ => throw new ArgumentException($"the CPU backend cannot allocate {dtype} tensors (Float32, Float64 and Int32 only)", nameof(dtype)),
        };
        var tensor = new CpuTensor(this, dtype, storage, 0, length, null);
        long inUse = Interlocked.Add(ref _bytesInUse, tensor.Bytes);
        InterlockedMax(ref _peakBytesInUse, inUse);
        Interlocked.Increment(ref _allocations);
        return tensor;
    }

    public void Upload(Tensor dst, ReadOnlySpan<double> src)
    {
        var t = Own(dst, nameof(dst));
        CheckTransferCount(t, src.Length, nameof(src));
        switch (t.DType)
        {
            case DType.Float64: src.CopyTo(t.Span<double>()); break;
            case DType.Float32: ConvertTo(src, t.Span<float>()); break;
            default: throw FloatIntoInt(t, "double");
        }
    }

    public void Upload(Tensor dst, ReadOnlySpan<float> src)
    {
        var t = Own(dst, nameof(dst));
        CheckTransferCount(t, src.Length, nameof(src));
        switch (t.DType)
        {
            case DType.Float32: src.CopyTo(t.Span<float>()); break;
            case DType.Float64: ConvertTo(src, t.Span<double>()); break;
            default: throw FloatIntoInt(t, "float");
        }
    }

    public void Upload(Tensor dst, ReadOnlySpan<int> src)
    {
        var t = Own(dst, nameof(dst));
        CheckTransferCount(t, src.Length, nameof(src));
        switch (t.DType)
        {
            case DType.Int32: src.CopyTo(t.Span<int>()); break;
            case DType.Float32: ConvertTo(src, t.Span<float>()); break;
            case DType.Float64: ConvertTo(src, t.Span<double>()); break;
            default: throw new ArgumentException($"unsupported dtype {t.DType}", nameof(dst));
        }
    }

    public void Download(Tensor src, Span<double> dst)
    {
        var t = Own(src, nameof(src));
        CheckTransferCount(t, dst.Length, nameof(dst));
        switch (t.DType)
        {
            case DType.Float64: t.Span<double>().CopyTo(dst); break;
            case DType.Float32: ConvertTo<float, double>(t.Span<float>(), dst); break;
            case DType.Int32: ConvertTo<int, double>(t.Span<int>(), dst); break;
            default: throw new ArgumentException($"unsupported dtype {t.DType}", nameof(src));
        }
    }

    public void Download(Tensor src, Span<float> dst)
    {
        var t = Own(src, nameof(src));
        CheckTransferCount(t, dst.Length, nameof(dst));
        switch (t.DType)
        {
            case DType.Float32: t.Span<float>().CopyTo(dst); break;
            case DType.Float64: ConvertTo<double, float>(t.Span<double>(), dst); break;
            case DType.Int32: ConvertTo<int, float>(t.Span<int>(), dst); break;
            default: throw new ArgumentException($"unsupported dtype {t.DType}", nameof(src));
        }
    }

    public void Download(Tensor src, Span<int> dst)
    {
        var t = Own(src, nameof(src));
        CheckTransferCount(t, dst.Length, nameof(dst));
        if (t.DType != DType.Int32)
        {
            throw new ArgumentException($"cannot download the {t.DType} tensor {t} into int values", nameof(dst));
        }
        t.Span<int>().CopyTo(dst);
    }

    /// <summary>Work completes on return on the CPU backend: nothing to wait for.</summary>
    public void Synchronize() => ObjectDisposedException.ThrowIf(_disposed, this);

    public void ResetPeak() => Interlocked.Exchange(ref _peakBytesInUse, Interlocked.Read(ref _bytesInUse));

    public void Dispose() => _disposed = true;

    /// <summary>
    /// The tensor as a <see cref="CpuTensor"/> of this backend; throws when it is null, belongs to another
    /// backend or has been disposed.
    /// </summary>
    internal CpuTensor Own(Tensor tensor, string name)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        if (!ReferenceEquals(tensor.Backend, this) || tensor is not CpuTensor cpu)
        {
            throw new ArgumentException($"{name} ({tensor}) belongs to another backend than this {Name} backend", name);
        }
        cpu.ThrowIfDisposed();
        return cpu;
    }

    internal void Release(long bytes) => Interlocked.Add(ref _bytesInUse, -bytes);

    private static void CheckTransferCount(CpuTensor tensor, int hostCount, string hostName)
    {
        if (tensor.Count != hostCount)
        {
            throw new ArgumentException(
                $"the tensor has {tensor.Count} elements but the host {hostName} span has {hostCount}", hostName);
        }
    }

    private static ArgumentException FloatIntoInt(CpuTensor tensor, string hostType) =>
        new($"cannot upload {hostType} values into the {tensor.DType} tensor {tensor}", "src");

    private static void ConvertTo<TFrom, TTo>(ReadOnlySpan<TFrom> src, Span<TTo> dst)
        where TFrom : System.Numerics.INumberBase<TFrom>
        where TTo : System.Numerics.INumberBase<TTo>
    {
        for (int i = 0; i < src.Length; i++)
        {
            dst[i] = TTo.CreateTruncating(src[i]);
        }
    }

    private static T[] Filled<T>(int length, T value)
    {
        var array = GC.AllocateUninitializedArray<T>(length);
        array.AsSpan().Fill(value);
        return array;
    }

    private static void InterlockedMax(ref long target, long value)
    {
        long current = Interlocked.Read(ref target);
        while (value > current)
        {
            long seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }
            current = seen;
        }
    }
}
