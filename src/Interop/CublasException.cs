namespace ModelParallel.Interop;

/// <summary>A cuBLAS or cuBLASLt call failed; <see cref="NativeCallException.Code"/> is the cublasStatus_t value.</summary>
public sealed class CublasException : NativeCallException
{
    public CublasException(string call, int code, string name, string libraryMessage)
        : base("cuBLAS", call, code, name, libraryMessage)
    {
    }
}
