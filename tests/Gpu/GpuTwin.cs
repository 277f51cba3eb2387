using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Runtime.Cuda;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Gpu;

/// <summary>Which of a <see cref="GpuTwin"/>'s two backends a call runs on.</summary>
public enum Side
{
    Gpu,
    Cpu,
}

/// <summary>The same values on both backends: <see cref="DType"/> on the GPU, Float64 (or Int32) on the CPU.</summary>
public sealed record TwinTensor(Tensor Gpu, Tensor Cpu, DType DType)
{
    public Tensor On(Side side) => side == Side.Gpu ? Gpu : Cpu;
}

/// <summary>
/// Runs a kernel call on a <see cref="CudaBackend"/> and on the float64 CPU reference backend with the same inputs
/// (rounded to the GPU dtype first) and compares the outputs by relative error.
/// </summary>
public sealed class GpuTwin : IDisposable
{
    private readonly List<TwinTensor> _tensors = [];

    public GpuTwin(int device = 0)
    {
        GpuRequirement.Require(device + 1);
        Gpu = new CudaBackend(device);
        Cpu = new CpuBackend(DType.Float64);
        Rng = TestRandom.Create();
    }

    public CudaBackend Gpu { get; }

    public CpuBackend Cpu { get; }

    public Random Rng { get; }

    /// <summary>The tolerance for outputs computed in <paramref name="dtype"/>: 1e-2 for 16-bit types, 1e-5 for Float32.</summary>
    public static double Tolerance(DType dtype) => dtype == DType.Float32 ? 1e-5 : 1e-2;

    /// <summary>The value as <paramref name="dtype"/> stores it.</summary>
    public static double Round(double value, DType dtype) => dtype switch
    {
        DType.BFloat16 => (float)(BFloat16)(float)value,
        DType.Float16 => (double)(Half)value,
        DType.Float32 => (float)value,
        DType.Float64 => value,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a floating dtype"),
    };

    /// <summary>Fresh random values in [-scale, scale] (never all zero) on both sides.</summary>
    public TwinTensor Random(long count, DType dtype, double scale = 1) =>
        Values(Numerics.RandomArray(Rng, checked((int)count), scale), dtype);

    /// <summary>Fresh random values in [low, high].</summary>
    public TwinTensor Uniform(long count, DType dtype, double low, double high) =>
        Values([.. Enumerable.Range(0, checked((int)count)).Select(_ => low + (high - low) * Rng.NextDouble())], dtype);

    public TwinTensor Values(double[] values, DType dtype)
    {
        double[] rounded = [.. values.Select(v => Round(v, dtype))];
        var gpu = Gpu.Allocate(dtype, rounded.Length);
        Gpu.Upload(gpu, rounded);
        var cpu = Cpu.Allocate(DType.Float64, rounded.Length);
        Cpu.Upload(cpu, rounded);
        return Track(new TwinTensor(gpu, cpu, dtype));
    }

    public TwinTensor Ints(int[] values)
    {
        var gpu = Gpu.Allocate(DType.Int32, values.Length);
        Gpu.Upload(gpu, values);
        var cpu = Cpu.Allocate(DType.Int32, values.Length);
        Cpu.Upload(cpu, values);
        return Track(new TwinTensor(gpu, cpu, DType.Int32));
    }

    /// <summary>An output filled with NaN on both sides, so that an element a kernel fails to write shows up.</summary>
    public TwinTensor Poisoned(long count, DType dtype)
    {
        var gpu = Gpu.Allocate(dtype, count);
        Gpu.Kernels.Fill(gpu, double.NaN);
        var cpu = Cpu.Allocate(DType.Float64, count);
        Cpu.Kernels.Fill(cpu, double.NaN);
        return Track(new TwinTensor(gpu, cpu, dtype));
    }

    /// <summary>Issues <paramref name="call"/> on the GPU, then runs it on the CPU.</summary>
    public void Run(Action<IKernels, Side> call)
    {
        call(Gpu.Kernels, Side.Gpu);
        call(Cpu.Kernels, Side.Cpu);
    }

    public double[] DownloadGpu(TwinTensor tensor)
    {
        var values = new double[tensor.Gpu.Count];
        Gpu.Download(tensor.Gpu, values);
        return values;
    }

    public double[] DownloadCpu(TwinTensor tensor)
    {
        var values = new double[tensor.Cpu.Count];
        Cpu.Download(tensor.Cpu, values);
        return values;
    }

    /// <summary>Asserts ||gpu - cpu|| / ||cpu|| &lt;= <paramref name="tolerance"/> (default: that of the tensor's dtype).</summary>
    public void AssertClose(TwinTensor tensor, string what, double? tolerance = null) =>
        Numerics.AssertClose(DownloadGpu(tensor), DownloadCpu(tensor), tolerance ?? Tolerance(tensor.DType), what);

    private TwinTensor Track(TwinTensor tensor)
    {
        _tensors.Add(tensor);
        return tensor;
    }

    public void Dispose()
    {
        foreach (var tensor in _tensors)
        {
            tensor.Gpu.Dispose();
            tensor.Cpu.Dispose();
        }
        Gpu.Dispose();
        Cpu.Dispose();
    }
}
