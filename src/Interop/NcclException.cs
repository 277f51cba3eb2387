namespace ModelParallel.Interop;

/// <summary>An NCCL call failed, or a communicator reported an asynchronous error;
/// <see cref="NativeCallException.Code"/> is the ncclResult_t value.</summary>
public sealed class NcclException : NativeCallException
{
    public NcclException(string call, int code, string name, string libraryMessage)
        : base("NCCL", call, code, name, libraryMessage)
    {
    }
}
