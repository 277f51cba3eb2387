using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>The CPU backend's allocator, transfers and checks on tensors.</summary>
public sealed class CpuBackendTests
{
    [Fact]
    public void Constructor_DescribesTheBackend_AndRejectsOtherComputeTypes()
    {
        using var backend = new CpuBackend(DType.Float64);
        Assert.Equal((BackendKind.Cpu, "cpu-float64"), (backend.Kind, backend.Name));
        Assert.Equal([DType.Float64, DType.Float64, DType.Float64, DType.Float64],
            [backend.Compute, backend.GradType, backend.StatsType, backend.MasterType]);
        Assert.Contains("BFloat16", Assert.Throws<ArgumentException>(() => new CpuBackend(DType.BFloat16)).Message);
        Assert.Contains("Int32", Assert.Throws<ArgumentException>(() => new CpuBackend(DType.Int32)).Message);
    }

    [Fact]
    public void Allocator_TracksBytesInUsePeakAndAllocations()
    {
        using var backend = new CpuBackend(DType.Float32);
        var start = backend.AllocatorStats;
        Assert.Equal(new AllocatorStats(0, 0, 0, 0, 0), start);

        var a = backend.Allocate(DType.Float32, 100);
        var b = backend.Allocate(DType.Float64, 10);
        var c = backend.Allocate(DType.Int32, 3);
        Assert.Equal(400 + 80 + 12, backend.AllocatorStats.BytesInUse);
        Assert.Equal(3, backend.AllocatorStats.Allocations);

        var view = a.Slice(10, 20);
        view.Dispose();
        Assert.Equal(492, backend.AllocatorStats.BytesInUse);

        a.Dispose();
        a.Dispose();
        Assert.Equal(92, backend.AllocatorStats.BytesInUse);
        Assert.Equal(492, backend.AllocatorStats.PeakBytesInUse);

        backend.ResetPeak();
        Assert.Equal(92, backend.AllocatorStats.PeakBytesInUse);
        var d = backend.Allocate(DType.Float32, 2);
        Assert.Equal((100L, 100L, 4L), (backend.AllocatorStats.BytesInUse, backend.AllocatorStats.PeakBytesInUse,
            backend.AllocatorStats.Allocations));
        b.Dispose();
        c.Dispose();
        d.Dispose();
        Assert.Equal(0, backend.AllocatorStats.BytesInUse);
    }

    [Fact]
    public void Allocate_RejectsUnsupportedTypesAndCounts()
    {
        using var backend = new CpuBackend(DType.Float32);
        Assert.Contains("BFloat16", Assert.Throws<ArgumentException>(() => backend.Allocate(DType.BFloat16, 4)).Message);
        Assert.Contains("Float16", Assert.Throws<ArgumentException>(() => backend.Allocate(DType.Float16, 4)).Message);
        Assert.Equal("count", Assert.Throws<ArgumentOutOfRangeException>(() => backend.Allocate(DType.Float32, -1)).ParamName);
    }

    [Fact]
    public void UploadDownload_ConvertBetweenHostAndTensorTypes()
    {
        var rng = TestRandom.Create();
        var values = Numerics.RandomArray(rng, 9);
        using var backend = new CpuBackend(DType.Float64);
        var f = backend.Allocate(DType.Float32, 9);
        backend.Upload(f, values);
        var asDouble = new double[9];
        backend.Download(f, asDouble);
        Assert.Equal(CpuTestKit.Rounded(DType.Float32, values), asDouble);
        var asFloat = new float[9];
        backend.Download(f, asFloat);
        Assert.Equal(values.Select(v => (float)v), asFloat);

        var d = backend.Allocate(DType.Float64, 9);
        backend.Upload(d, asFloat);
        backend.Download(d, asDouble);
        Assert.Equal(CpuTestKit.Rounded(DType.Float32, values), asDouble);

        var ints = backend.Allocate(DType.Int32, 3);
        backend.Upload(ints, [4, -5, 6]);
        var intsBack = new int[3];
        backend.Download(ints, intsBack);
        Assert.Equal([4, -5, 6], intsBack);
        Assert.Throws<ArgumentException>(() => backend.Upload(ints, new double[] { 1, 2, 3 }));
        Assert.Throws<ArgumentException>(() => backend.Download(d, new int[9]));
    }

    [Fact]
    public void UploadDownload_CountMismatch_NamesBothCounts()
    {
        using var backend = new CpuBackend(DType.Float32);
        var t = backend.Allocate(DType.Float32, 5);
        var upload = Assert.Throws<ArgumentException>(() => backend.Upload(t, new double[4]));
        Assert.Contains("5", upload.Message);
        Assert.Contains("4", upload.Message);
        var download = Assert.Throws<ArgumentException>(() => backend.Download(t, new float[6]));
        Assert.Contains("5", download.Message);
        Assert.Contains("6", download.Message);
    }

    [Fact]
    public void ForeignAndDisposedTensors_Throw()
    {
        using var backend = new CpuBackend(DType.Float32);
        using var other = new CpuBackend(DType.Float32);
        var foreign = other.Allocate(DType.Float32, 4);
        Assert.Equal("dst", Assert.Throws<ArgumentException>(() => backend.Upload(foreign, new float[4])).ParamName);
        Assert.Equal("x", Assert.Throws<ArgumentException>(() => backend.Kernels.GeluForward(backend.Allocate(DType.Float32, 4), foreign)).ParamName);

        var owner = backend.Allocate(DType.Float32, 4);
        var view = owner.Slice(1, 2);
        owner.Dispose();
        Assert.Throws<ObjectDisposedException>(() => backend.Download(owner, new float[4]));
        Assert.Throws<ObjectDisposedException>(() => backend.Download(view, new float[2]));
        Assert.Throws<ObjectDisposedException>(() => owner.Slice(0, 1));
        Assert.Throws<ObjectDisposedException>(() => backend.Kernels.Fill(view, 1));
    }

    [Fact]
    public void NewTensors_AreNaN_SoUnwrittenReadsShow()
    {
        using var backend = new CpuBackend(DType.Float64);
        Assert.All(TestTensors.Download(backend.Allocate(DType.Float64, 3)), v => Assert.True(double.IsNaN(v)));
    }
}
