namespace ModelParallel.Interop;

/// <summary>A CUDA runtime or driver call failed; <see cref="NativeCallException.Code"/> is the cudaError_t (runtime)
/// or CUresult (driver) value.</summary>
public sealed class CudaException : NativeCallException
{
    public CudaException(string call, int code, string name, string libraryMessage)
        : base("CUDA", call, code, name, libraryMessage)
    {
    }
}
