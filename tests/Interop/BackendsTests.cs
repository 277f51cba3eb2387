using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Runtime.Cuda;

namespace ModelParallel.Tests.Interop;

public class BackendsTests
{
    [Fact]
    public void TryGetDeviceCountNeverThrowsAndSaysWhyThereIsNone()
    {
        bool any = CudaBackend.TryGetDeviceCount(out int count, out string reason);
        Assert.Equal(count > 0, any);
        if (!any)
        {
            Assert.Equal(0, count);
            Assert.False(string.IsNullOrWhiteSpace(reason));
        }
    }

    [Fact]
    public void CudaRequestedWithoutAGpuThrowsInsteadOfFallingBack()
    {
        Assert.SkipWhen(CudaBackend.TryGetDeviceCount(out _, out _), "a GPU is present on this machine");
        var e = Assert.Throws<InvalidOperationException>(() => Backends.Create(BackendKind.Cuda));
        Assert.Contains("CUDA", e.Message);
        Assert.Throws<InvalidOperationException>(() => new CudaBackend());
        Assert.Throws<InvalidOperationException>(() => CudaWorld.Run(2, _ => { }));
        Assert.Equal(BackendKind.Cpu, Backends.Parse("auto"));
    }

    [Fact]
    public void ParseNamesTheKinds()
    {
        Assert.Equal(BackendKind.Cpu, Backends.Parse("cpu"));
        Assert.Equal(BackendKind.Cuda, Backends.Parse("CUDA"));
        Assert.Equal(CudaBackend.TryGetDeviceCount(out _, out _) ? BackendKind.Cuda : BackendKind.Cpu, Backends.Parse("auto"));
        var e = Assert.Throws<ArgumentException>(() => Backends.Parse("tpu"));
        Assert.Contains("tpu", e.Message);
    }

    [Fact]
    public void CreatesTheCpuBackendInTheRequestedDType()
    {
        using var backend = Backends.Create(BackendKind.Cpu, cpuCompute: DType.Float64);
        Assert.IsType<CpuBackend>(backend);
        Assert.Equal(DType.Float64, backend.Compute);
        using var defaulted = Backends.Create(BackendKind.Cpu);
        Assert.Equal(DType.Float32, defaulted.Compute);
        Assert.Throws<ArgumentOutOfRangeException>(() => Backends.Create(BackendKind.Cpu, device: 1));
        Assert.Throws<ArgumentException>(() => Backends.Create(BackendKind.Cuda, cpuCompute: DType.Float32));
    }
}
