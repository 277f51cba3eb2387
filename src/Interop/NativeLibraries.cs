using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ModelParallel.Interop;

/// <summary>
/// Finds the native libraries the declarations of this assembly bind to. Each library is looked for, in order,
/// in <see cref="SearchDirectory"/> (default: the MP_NATIVE_DIR environment variable), next to the assemblies,
/// in the CUDA toolkit folders (CUDA_HOME, CUDA_PATH, /usr/local/cuda) for CUDA libraries, and finally by soname
/// through the system loader (LD_LIBRARY_PATH, the ld.so cache). Several sonames are tried per library
/// (libcudart.so.13, then .12, ...). When none loads, <see cref="NativeLibraryNotFoundException"/> lists every path tried.
/// </summary>
public static class NativeLibraries
{
    /// <summary>Environment variable naming a folder searched first (where cmake built libmpnative.so).</summary>
    public const string DirectoryVariable = "MP_NATIVE_DIR";

    private static readonly ConcurrentDictionary<string, nint> Loaded = new();
    private static string? _searchDirectory = Environment.GetEnvironmentVariable(DirectoryVariable);

    /// <summary>Folder searched first for every library; null or empty to search only the default places.
    /// Set it before the first native call: a library already loaded stays loaded.</summary>
    public static string? SearchDirectory
    {
        get => _searchDirectory;
        set => _searchDirectory = value;
    }

    [ModuleInitializer]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2255",
        Justification = "The resolver must be registered before the first call of any declaration in this assembly.")]
    internal static void RegisterResolver() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);

    /// <summary>Loads the library the declarations call <paramref name="libraryName"/> ("cudart", "cuda",
    /// "cublasLt", "cublas", "nccl", "mpnative"), or throws <see cref="NativeLibraryNotFoundException"/>.</summary>
    public static nint Load(string libraryName)
    {
        ArgumentNullException.ThrowIfNull(libraryName);
        if (Loaded.TryGetValue(libraryName, out nint handle))
        {
            return handle;
        }
        var (sonames, remedy) = Describe(libraryName);
        var attempts = new List<string>();
        foreach (string candidate in Candidates(sonames, IsCudaLibrary(libraryName)))
        {
            try
            {
                handle = NativeLibrary.Load(candidate);
                return Loaded.GetOrAdd(libraryName, handle);
            }
            catch (DllNotFoundException e)
            {
                attempts.Add($"{candidate}: {FirstLine(e.Message)}");
            }
            catch (BadImageFormatException e)
            {
                attempts.Add($"{candidate}: {FirstLine(e.Message)}");
            }
        }
        throw new NativeLibraryNotFoundException(libraryName, attempts, remedy);
    }

    /// <summary>The sonames tried for a library, most recent first.</summary>
    public static IReadOnlyList<string> SonamesOf(string libraryName) => Describe(libraryName).Sonames;

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        IsKnown(libraryName) ? Load(libraryName) : 0;

    private static bool IsKnown(string libraryName) =>
        libraryName is CudaRuntime.Library or CudaDriver.Library or CublasLt.Library or Cublas.Library
            or Nccl.Library or MpNative.Library;

    private static bool IsCudaLibrary(string libraryName) =>
        libraryName is CudaRuntime.Library or CublasLt.Library or Cublas.Library;

    private static (string[] Sonames, string Remedy) Describe(string libraryName) => libraryName switch
    {
        CudaRuntime.Library => (["libcudart.so.13", "libcudart.so.12", "libcudart.so"],
            "Install the CUDA runtime (13.x or 12.x) and put its lib64 folder on LD_LIBRARY_PATH, or set " +
            $"{DirectoryVariable} to the folder holding libcudart.so."),
        CudaDriver.Library => (["libcuda.so.1", "libcuda.so"],
            "Install the NVIDIA driver: libcuda.so.1 comes with it. No GPU driver means no CUDA backend; use the CPU backend."),
        CublasLt.Library => (["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"],
            "Install cuBLAS (part of the CUDA toolkit) and put its lib64 folder on LD_LIBRARY_PATH, or set " +
            $"{DirectoryVariable} to the folder holding libcublasLt.so."),
        Cublas.Library => (["libcublas.so.13", "libcublas.so.12", "libcublas.so"],
            "Install cuBLAS (part of the CUDA toolkit) and put its lib64 folder on LD_LIBRARY_PATH, or set " +
            $"{DirectoryVariable} to the folder holding libcublas.so."),
        Nccl.Library => (["libnccl.so.2", "libnccl.so"],
            "Install NCCL 2 (a system package, or pip's nvidia-nccl-cu13 whose nvidia/nccl/lib folder holds it) and put " +
            $"its folder on LD_LIBRARY_PATH, or set {DirectoryVariable} to it."),
        MpNative.Library => (["libmpnative.so"],
            "Build it at the repository root with `cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && " +
            $"cmake --build build`, then set {DirectoryVariable}=build (or NativeLibraries.SearchDirectory)."),
        _ => throw new ArgumentException($"unknown native library '{libraryName}'", nameof(libraryName)),
    };

    private static IEnumerable<string> Candidates(string[] sonames, bool cudaToolkit)
    {
        var directories = new List<string>();
        if (!string.IsNullOrEmpty(_searchDirectory))
        {
            directories.Add(Path.GetFullPath(_searchDirectory));
        }
        directories.Add(AppContext.BaseDirectory);
        string? assemblyDirectory = Path.GetDirectoryName(typeof(NativeLibraries).Assembly.Location);
        if (!string.IsNullOrEmpty(assemblyDirectory))
        {
            directories.Add(assemblyDirectory);
        }
        if (cudaToolkit)
        {
            foreach (string variable in new[] { "CUDA_HOME", "CUDA_PATH" })
            {
                string? root = Environment.GetEnvironmentVariable(variable);
                if (!string.IsNullOrEmpty(root))
                {
                    directories.Add(Path.Combine(root, "lib64"));
                }
            }
            directories.Add("/usr/local/cuda/lib64");
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string directory in directories)
        {
            foreach (string soname in sonames)
            {
                string path = Path.Combine(directory, soname);
                if (seen.Add(path))
                {
                    yield return path;
                }
            }
        }
        foreach (string soname in sonames)
        {
            yield return soname;
        }
    }

    private static string FirstLine(string message)
    {
        int newline = message.IndexOf('\n');
        return newline < 0 ? message : message[..newline];
    }
}
