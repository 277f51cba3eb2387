namespace ModelParallel.Interop;

/// <summary>A call into a native library returned a failure status.</summary>
public abstract class NativeCallException : Exception
{
    protected NativeCallException(string library, string call, int code, string name, string libraryMessage)
        : base($"{call} failed: {name} ({code}): {libraryMessage}")
    {
        Library = library;
        Call = call;
        Code = code;
        Name = name;
        LibraryMessage = libraryMessage;
    }

    /// <summary>"CUDA", "cuBLAS", "NCCL" or "mpnative".</summary>
    public string Library { get; }

    /// <summary>The failing call and its salient arguments.</summary>
    public string Call { get; }

    /// <summary>The library's numeric status.</summary>
    public int Code { get; }

    /// <summary>The library's symbolic name of the status (e.g. "cudaErrorMemoryAllocation").</summary>
    public string Name { get; }

    /// <summary>The library's own description of the failure.</summary>
    public string LibraryMessage { get; }
}
