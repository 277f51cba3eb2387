namespace ModelParallel.Interop;

/// <summary>
/// A native library (CUDA runtime, cuBLASLt, NCCL, libmpnative.so...) could not be loaded. The message lists
/// every path tried with the loader's reason, and how to make the library findable.
/// </summary>
public sealed class NativeLibraryNotFoundException : DllNotFoundException
{
    public NativeLibraryNotFoundException(string libraryName, IReadOnlyList<string> attempts, string remedy)
        : base(Format(libraryName, attempts, remedy))
    {
        LibraryName = libraryName;
        Attempts = attempts;
    }

    /// <summary>The name the declarations use ("cudart", "nccl", "mpnative"...).</summary>
    public string LibraryName { get; }

    /// <summary>Each path tried, followed by the loader's reason for refusing it.</summary>
    public IReadOnlyList<string> Attempts { get; }

    private static string Format(string libraryName, IReadOnlyList<string> attempts, string remedy) =>
        $"could not load the native library '{libraryName}'. Tried:\n  " + string.Join("\n  ", attempts) + "\n" + remedy;
}
