using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ModelParallel.Interop;

namespace ModelParallel.Tests.Interop;

/// <summary>The blittable structs passed to native code have the sizes and offsets of the C headers
/// (cublasLt.h, driver_types.h, nccl.h, mp_native.h).</summary>
public class StructLayoutTests
{
    [Fact]
    public void SizesMatchTheHeaders()
    {
        Assert.Equal(64, Unsafe.SizeOf<CublasLtMatmulAlgo>());
        Assert.Equal(96, Unsafe.SizeOf<CublasLtHeuristicResult>());
        Assert.Equal(CudaIpcMemHandle.Size, Unsafe.SizeOf<CudaIpcMemHandle>());
        Assert.Equal(64, CudaIpcMemHandle.Size);
        Assert.Equal(NcclUniqueId.Size, Unsafe.SizeOf<NcclUniqueId>());
        Assert.Equal(128, NcclUniqueId.Size);
    }

    [Fact]
    public void HeuristicResultFieldsSitWhereCublasLtWritesThem()
    {
        Assert.Equal(64, (int)Marshal.OffsetOf<CublasLtHeuristicResult>(nameof(CublasLtHeuristicResult.WorkspaceSize)));
        Assert.Equal(72, (int)Marshal.OffsetOf<CublasLtHeuristicResult>(nameof(CublasLtHeuristicResult.State)));
        Assert.Equal(76, (int)Marshal.OffsetOf<CublasLtHeuristicResult>(nameof(CublasLtHeuristicResult.WavesCount)));
    }

    [Fact]
    public void RopeScalingIsFourDoublesInTheHeadersOrder()
    {
        Assert.Equal(32, Unsafe.SizeOf<MpRopeScaling>());
        Assert.Equal(32, Marshal.SizeOf<MpRopeScaling>());
        Assert.Equal(0, (int)Marshal.OffsetOf<MpRopeScaling>(nameof(MpRopeScaling.Factor)));
        Assert.Equal(8, (int)Marshal.OffsetOf<MpRopeScaling>(nameof(MpRopeScaling.LowFreqFactor)));
        Assert.Equal(16, (int)Marshal.OffsetOf<MpRopeScaling>(nameof(MpRopeScaling.HighFreqFactor)));
        Assert.Equal(24, (int)Marshal.OffsetOf<MpRopeScaling>(nameof(MpRopeScaling.OriginalMaxPositions)));
    }

    [Fact]
    public void OpaqueHandlesRoundTripThroughBytes()
    {
        var rng = Support.TestRandom.Create();
        var id = new byte[NcclUniqueId.Size];
        rng.NextBytes(id);
        Assert.Equal(id, NcclUniqueId.FromBytes(id).ToArray());
        var handle = new byte[CudaIpcMemHandle.Size];
        rng.NextBytes(handle);
        Assert.Equal(handle, CudaIpcMemHandle.FromBytes(handle).ToArray());
        Assert.Throws<ArgumentException>(() => NcclUniqueId.FromBytes(new byte[127]));
        Assert.Throws<ArgumentException>(() => CudaIpcMemHandle.FromBytes(new byte[65]));
    }
}
