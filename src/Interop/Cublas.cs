using System.Runtime.InteropServices;

namespace ModelParallel.Interop;

/// <summary>Declarations of cuBLAS (libcublas.so), kept to what cuBLASLt lacks: the cuBLAS version, which needs a
/// handle. Functions return a cublasStatus_t (0 = success).</summary>
internal static unsafe partial class Cublas
{
    public const string Library = "cublas";

    [LibraryImport(Library, EntryPoint = "cublasCreate_v2")]
    public static partial int Create(nint* handle);

    [LibraryImport(Library, EntryPoint = "cublasDestroy_v2")]
    public static partial int Destroy(nint handle);

    [LibraryImport(Library, EntryPoint = "cublasGetVersion_v2")]
    public static partial int GetVersion(nint handle, int* version);
}
