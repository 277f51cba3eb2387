using System.Runtime.InteropServices;
using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>An ncclComm_t. Released with ncclCommDestroy while healthy; once marked failed (an asynchronous error,
/// a timed-out wait, a failed peer) with ncclCommAbort, which also stops operations still running.</summary>
internal sealed class NcclCommHandle : SafeHandle
{
    private volatile bool _failed;

    public NcclCommHandle()
        : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    public bool Failed => _failed;

    public void Adopt(nint value) => SetHandle(value);

    /// <summary>From now on, releasing aborts instead of destroying.</summary>
    public void MarkFailed() => _failed = true;

    /// <summary>Aborts the communicator now (idempotent; safe from another thread).</summary>
    public void Abort()
    {
        _failed = true;
        Dispose();
    }

    protected override bool ReleaseHandle() =>
        (_failed ? Nccl.CommAbort(handle) : Nccl.CommDestroy(handle)) == Nccl.Success;
}
