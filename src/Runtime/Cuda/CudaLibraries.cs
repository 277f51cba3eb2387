using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>Versions of the CUDA stack this process loaded (CUDA encodes 13.0 as 13000, NCCL 2.28.3 as 22803).</summary>
public sealed record CudaLibraryVersions(int Driver, int Runtime, long CublasLt, int Cublas, int Nccl)
{
    /// <summary>Queries every library (loading it); throws when one is missing.</summary>
    public static unsafe CudaLibraryVersions Query()
    {
        int driver, runtime, cublas, nccl;
        Status.CheckCuda(CudaRuntime.DriverGetVersion(&driver), "cudaDriverGetVersion");
        Status.CheckCuda(CudaRuntime.RuntimeGetVersion(&runtime), "cudaRuntimeGetVersion");
        long cublasLt = (long)Interop.CublasLt.GetVersion();
        nint handle;
        Status.CheckCublas(Interop.Cublas.Create(&handle), "cublasCreate");
        try
        {
            Status.CheckCublas(Interop.Cublas.GetVersion(handle, &cublas), "cublasGetVersion");
        }
        finally
        {
            Interop.Cublas.Destroy(handle);
        }
        Status.CheckNccl(Interop.Nccl.GetVersion(&nccl), "ncclGetVersion");
        return new CudaLibraryVersions(driver, runtime, cublasLt, cublas, nccl);
    }

    public override string ToString() =>
        $"driver {Cuda(Driver)}, runtime {Cuda(Runtime)}, cuBLASLt {CublasLt}, cuBLAS {Cublas}, " +
        $"NCCL {Nccl / 10000}.{Nccl / 100 % 100}.{Nccl % 100}";

    private static string Cuda(int version) => $"{version / 1000}.{version % 1000 / 10}";
}
