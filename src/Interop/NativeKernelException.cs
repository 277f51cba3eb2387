namespace ModelParallel.Interop;

/// <summary>A libmpnative.so export returned a failure; <see cref="NativeCallException.Code"/> is the mp_status
/// value and the message carries mp_last_error()'s detail ("file:line: message").</summary>
public sealed class NativeKernelException : NativeCallException
{
    public NativeKernelException(string call, int code, string name, string libraryMessage)
        : base("mpnative", call, code, name, libraryMessage)
    {
    }
}
