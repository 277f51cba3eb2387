namespace ModelParallel.Runtime;

/// <summary>
/// The transfers of one <see cref="ICommunicator.BatchSendRecv"/>, which may still be running on the backend's
/// transfer stream while its compute stream goes on. A received tensor may be read, and a sent tensor overwritten or
/// freed, on the compute stream only after <see cref="Wait"/> (which orders the compute stream after the transfers
/// without blocking the host) or once <see cref="IsComplete"/> says the device has finished them. On the CPU the
/// transfers are complete when the call returns.
/// </summary>
public sealed class TransferGroup
{
    private readonly Func<bool>? _isComplete;
    private Action? _wait;

    /// <param name="wait">Makes the compute stream wait for the transfers (run once, by the first <see cref="Wait"/>).</param>
    /// <param name="isComplete">Whether the tensors are free for the compute stream (a query, not a wait).</param>
    public TransferGroup(Action wait, Func<bool> isComplete)
    {
        ArgumentNullException.ThrowIfNull(wait);
        ArgumentNullException.ThrowIfNull(isComplete);
        _wait = wait;
        _isComplete = isComplete;
    }

    private TransferGroup()
    {
    }

    /// <summary>A group whose transfers are complete and ordered already.</summary>
    public static TransferGroup Completed { get; } = new();

    /// <summary>Whether the compute stream may read and reuse the tensors without waiting: the device has finished the
    /// transfers, or <see cref="Wait"/> ordered the compute stream after them.</summary>
    public bool IsComplete => _isComplete?.Invoke() ?? true;

    /// <summary>Orders the compute stream after the transfers (idempotent; the host does not block).</summary>
    public void Wait()
    {
        var wait = _wait;
        _wait = null;
        wait?.Invoke();
    }
}
