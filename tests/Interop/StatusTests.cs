using ModelParallel.Interop;

namespace ModelParallel.Tests.Interop;

/// <summary>The status funnel maps each library's failure codes to its typed exception, with the code, the library's
/// name for it and its message (from the library when it is installed, else from the documented table).</summary>
public class StatusTests
{
    [Fact]
    public void SuccessPassesThrough()
    {
        Status.CheckCuda(0, "cudaMalloc");
        Status.CheckDriver(0, "cuInit");
        Status.CheckCublas(0, "cublasLtMatmul");
        Status.CheckNccl(0, "ncclAllReduce");
        Status.CheckNative(0, "mp_gelu_fwd");
    }

    [Fact]
    public void CudaRuntimeCodesBecomeCudaExceptions()
    {
        var e = Assert.Throws<CudaException>(() => Status.CheckCuda(2, "cudaMalloc(1024 bytes)"));
        Assert.Equal(2, e.Code);
        Assert.Equal("CUDA", e.Library);
        Assert.Equal("cudaErrorMemoryAllocation", e.Name);
        Assert.Contains("out of memory", e.LibraryMessage);
        Assert.StartsWith("cudaMalloc(1024 bytes) failed: cudaErrorMemoryAllocation (2): out of memory", e.Message);

        var noDevice = Status.Cuda(100, "cudaGetDeviceCount");
        Assert.Equal("cudaErrorNoDevice", noDevice.Name);
        Assert.Contains("no CUDA-capable device", noDevice.LibraryMessage);
    }

    [Fact]
    public void CublasStatusesBecomeCublasExceptions()
    {
        var e = Assert.Throws<CublasException>(() => Status.CheckCublas(15, "cublasLtMatmulAlgoGetHeuristic"));
        Assert.Equal(15, e.Code);
        Assert.Equal("cuBLAS", e.Library);
        Assert.Equal("CUBLAS_STATUS_NOT_SUPPORTED", e.Name);
        Assert.Contains("not supported", e.LibraryMessage);

        var invalid = Status.Cublas(7, "cublasLtMatmul");
        Assert.Equal("CUBLAS_STATUS_INVALID_VALUE", invalid.Name);
    }

    [Fact]
    public void NcclResultsBecomeNcclExceptions()
    {
        var e = Assert.Throws<NcclException>(() => Status.CheckNccl(6, "ncclAllReduce(1024 x Float32)"));
        Assert.Equal(6, e.Code);
        Assert.Equal("NCCL", e.Library);
        Assert.Equal("ncclRemoteError", e.Name);
        Assert.Contains("remote process exited", e.LibraryMessage);
        Assert.StartsWith("ncclAllReduce(1024 x Float32) failed: ncclRemoteError (6)", e.Message);

        Assert.Equal("ncclInvalidArgument", Status.NcclError(4, "ncclBroadcast").Name);
    }

    [Fact]
    public void NativeStatusesBecomeNativeKernelExceptions()
    {
        var e = Assert.Throws<NativeKernelException>(() => Status.CheckNative(2, "mp_attention_fwd(head_dim 96)"));
        Assert.Equal(2, e.Code);
        Assert.Equal("mpnative", e.Library);
        Assert.Equal("MP_ERR_UNSUPPORTED", e.Name);
        Assert.False(string.IsNullOrWhiteSpace(e.LibraryMessage));
        Assert.Equal("MP_ERR_INVALID_ARGUMENT", Status.Native(1, "mp_fill").Name);
    }

    [Fact]
    public void UnknownCodesStillNameTheCode()
    {
        var e = Status.NcclError(42, "ncclSend");
        Assert.Equal(42, e.Code);
        Assert.Contains("42", e.Name);
        Assert.Contains("mp_status 77", Status.Native(77, "mp_add").Name);
    }
}
