using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>
/// An NCCL communicator whose collectives are issued on its backend's stream (asynchronous: wait with
/// <see cref="CudaBackend.Synchronize"/> or a download). Tensors must be CUDA tensors of the backend's device with
/// the sizes <see cref="ICommunicator"/> documents. While it lives, the backend's waits check its asynchronous error.
/// Disposing waits for the stream and destroys the communicator; after a failure (an NCCL error, a timed-out wait,
/// another rank's failure) it aborts it instead, so that nothing waits for a peer that will not come.
/// </summary>
public sealed unsafe class NcclCommunicator : ICommunicator
{
    private readonly NcclCommHandle _comm;

    internal NcclCommunicator(CudaBackend backend, NcclCommHandle comm)
    {
        Backend = backend;
        _comm = comm;
        nint raw = comm.DangerousGetHandle();
        int rank, size;
        Status.CheckNccl(Nccl.CommUserRank(raw, &rank), "ncclCommUserRank", raw);
        Status.CheckNccl(Nccl.CommCount(raw, &size), "ncclCommCount", raw);
        Rank = rank;
        Size = size;
        backend.Register(this);
    }

    public CudaBackend Backend { get; }

    public int Rank { get; }

    public int Size { get; }

    /// <summary>True once the communicator was aborted or disposed.</summary>
    public bool IsClosed => _comm.IsClosed;

    private nint Comm
    {
        get
        {
            if (_comm.IsClosed)
            {
                throw new ObjectDisposedException(nameof(NcclCommunicator),
                    _comm.Failed ? $"rank {Rank} of {Size}: the communicator was aborted after a failure"
                        : $"rank {Rank} of {Size}: the communicator was disposed");
            }
            return _comm.DangerousGetHandle();
        }
    }

    public void AllReduce(Tensor send, Tensor recv, ReduceOp op = ReduceOp.Sum)
    {
        var (s, r) = Pair(send, recv);
        Expect(r, s.Count, nameof(recv), "send.Count");
        int dtype = DataType(s.DType);
        Issue(Nccl.AllReduce(s.Pointer, r.Pointer, (nuint)s.Count, dtype, Op(op), Comm, Backend.Stream.Handle),
            $"ncclAllReduce({s.Count} x {s.DType}, {op})");
    }

    public void AllGather(Tensor send, Tensor recv)
    {
        var (s, r) = Pair(send, recv);
        Expect(r, Size * s.Count, nameof(recv), $"Size ({Size}) x send.Count ({s.Count})");
        Issue(Nccl.AllGather(s.Pointer, r.Pointer, (nuint)s.Count, DataType(s.DType), Comm, Backend.Stream.Handle),
            $"ncclAllGather({s.Count} x {s.DType} per rank)");
    }

    public void ReduceScatter(Tensor send, Tensor recv, ReduceOp op = ReduceOp.Sum)
    {
        var (s, r) = Pair(send, recv);
        Expect(s, Size * r.Count, nameof(send), $"Size ({Size}) x recv.Count ({r.Count})");
        Issue(Nccl.ReduceScatter(s.Pointer, r.Pointer, (nuint)r.Count, DataType(s.DType), Op(op), Comm, Backend.Stream.Handle),
            $"ncclReduceScatter({r.Count} x {s.DType} per rank, {op})");
    }

    public void Broadcast(Tensor send, Tensor recv, int root)
    {
        CheckPeer(root, nameof(root));
        var (s, r) = Pair(send, recv);
        Expect(r, s.Count, nameof(recv), "send.Count");
        Issue(Nccl.Broadcast(s.Pointer, r.Pointer, (nuint)s.Count, DataType(s.DType), root, Comm, Backend.Stream.Handle),
            $"ncclBroadcast({s.Count} x {s.DType}, root {root})");
    }

    public void Reduce(Tensor send, Tensor recv, ReduceOp op, int root)
    {
        CheckPeer(root, nameof(root));
        var s = Backend.Require(send, nameof(send));
        nint recvPointer = 0;
        if (Rank == root)
        {
            var r = Backend.Require(recv, nameof(recv));
            if (r.DType != s.DType)
            {
                throw new ArgumentException($"send has dtype {s.DType} but recv has {r.DType}", nameof(recv));
            }
            Expect(r, s.Count, nameof(recv), "send.Count");
            recvPointer = r.Pointer;
        }
        Cuda.Device.MakeCurrent(Backend.Device);
        Issue(Nccl.Reduce(s.Pointer, recvPointer, (nuint)s.Count, DataType(s.DType), Op(op), root, Comm, Backend.Stream.Handle),
            $"ncclReduce({s.Count} x {s.DType}, {op}, root {root})");
    }

    public void Send(Tensor send, int peer)
    {
        CheckPeer(peer, nameof(peer), excludeSelf: true);
        var s = Backend.Require(send, nameof(send));
        Cuda.Device.MakeCurrent(Backend.Device);
        Issue(Nccl.Send(s.Pointer, (nuint)s.Count, DataType(s.DType), peer, Comm, Backend.Stream.Handle),
            $"ncclSend({s.Count} x {s.DType} to {peer})");
    }

    public void Recv(Tensor recv, int peer)
    {
        CheckPeer(peer, nameof(peer), excludeSelf: true);
        var r = Backend.Require(recv, nameof(recv));
        Cuda.Device.MakeCurrent(Backend.Device);
        Issue(Nccl.Recv(r.Pointer, (nuint)r.Count, DataType(r.DType), peer, Comm, Backend.Stream.Handle),
            $"ncclRecv({r.Count} x {r.DType} from {peer})");
    }

    public void SendRecv(Tensor send, int sendPeer, Tensor recv, int recvPeer)
    {
        CheckPeer(sendPeer, nameof(sendPeer), excludeSelf: true);
        CheckPeer(recvPeer, nameof(recvPeer), excludeSelf: true);
        var s = Backend.Require(send, nameof(send));
        var r = Backend.Require(recv, nameof(recv));
        if (s.DType != r.DType)
        {
            throw new ArgumentException($"send has dtype {s.DType} but recv has {r.DType}", nameof(recv));
        }
        nint comm = Comm;
        Cuda.Device.MakeCurrent(Backend.Device);
        Status.CheckNccl(Nccl.GroupStart(), "ncclGroupStart", comm);
        int sent = Nccl.Send(s.Pointer, (nuint)s.Count, DataType(s.DType), sendPeer, comm, Backend.Stream.Handle);
        int received = sent == Nccl.Success
            ? Nccl.Recv(r.Pointer, (nuint)r.Count, DataType(r.DType), recvPeer, comm, Backend.Stream.Handle)
            : Nccl.Success;
        int ended = Nccl.GroupEnd();
        Issue(sent, $"ncclSend({s.Count} x {s.DType} to {sendPeer}) in a group");
        Issue(received, $"ncclRecv({r.Count} x {r.DType} from {recvPeer}) in a group");
        Issue(ended, $"ncclGroupEnd(send to {sendPeer}, receive from {recvPeer})");
    }

    public TransferGroup BatchSendRecv(IReadOnlyList<PeerTransfer> transfers)
    {
        ArgumentNullException.ThrowIfNull(transfers);
        var checkedTransfers = transfers.Select(t =>
        {
            CheckPeer(t.Peer, nameof(transfers), excludeSelf: true);
            return (Tensor: Backend.Require(t.Tensor, nameof(transfers)), t.Peer, t.IsSend);
        }).ToList();
        if (checkedTransfers.Count == 0)
        {
            return TransferGroup.Completed;
        }
        nint comm = Comm;
        Cuda.Device.MakeCurrent(Backend.Device);
        // The transfers start after the work issued so far on the compute stream (which made what they send and
        // allocated what they receive into).
        var transferStream = Backend.TransferStream;
        using (var ready = new CudaEvent(Backend.Device, timing: false))
        {
            ready.Record(Backend.Stream);
            transferStream.Wait(ready);
        }
        Status.CheckNccl(Nccl.GroupStart(), "ncclGroupStart", comm);
        int failed = Nccl.Success;
        string what = "";
        foreach (var (t, peer, isSend) in checkedTransfers)
        {
            int status = isSend
                ? Nccl.Send(t.Pointer, (nuint)t.Count, DataType(t.DType), peer, comm, transferStream.Handle)
                : Nccl.Recv(t.Pointer, (nuint)t.Count, DataType(t.DType), peer, comm, transferStream.Handle);
            if (status != Nccl.Success)
            {
                failed = status;
                what = isSend ? $"ncclSend({t.Count} x {t.DType} to {peer}) in a group" : $"ncclRecv({t.Count} x {t.DType} from {peer}) in a group";
                break;
            }
        }
        int ended = Nccl.GroupEnd();
        Issue(failed, what);
        Issue(ended, $"ncclGroupEnd({checkedTransfers.Count} transfers)");
        var done = new CudaEvent(Backend.Device, timing: false);
        done.Record(transferStream);
        return CudaTransfers.Group(Backend.Stream, [done]);
    }

    /// <summary>Collective over this communicator (every rank must call it): ranks passing the same
    /// <paramref name="color"/> (&gt;= 0) form a new communicator on the same backend, ordered by
    /// <paramref name="key"/> then by rank (ncclCommSplit).</summary>
    public ICommunicator Split(int color, int key)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(color);
        nint comm = Comm;
        Cuda.Device.MakeCurrent(Backend.Device);
        var handle = new NcclCommHandle();
        nint split;
        Issue(Nccl.CommSplit(comm, color, key, &split, 0), $"ncclCommSplit(color {color}, key {key})");
        handle.Adopt(split);
        try
        {
            return new NcclCommunicator(Backend, handle);
        }
        catch
        {
            handle.Abort();
            throw;
        }
    }

    /// <summary>Aborts the communicator: operations still running stop, resources are freed; later calls throw.
    /// Safe from another thread.</summary>
    public void Abort()
    {
        _comm.Abort();
        Backend.Unregister(this);
    }

    /// <summary>Waits for the backend's stream, then destroys the communicator (aborts it after a failure).</summary>
    public void Dispose()
    {
        if (_comm.IsClosed)
        {
            Backend.Unregister(this);
            return;
        }
        if (!_comm.Failed)
        {
            try
            {
                Backend.Synchronize();
            }
            catch (Exception e) when (e is NativeCallException or OperationCanceledException or TimeoutException
                                          or ObjectDisposedException)
            {
                _comm.MarkFailed();
            }
        }
        _comm.Dispose();
        Backend.Unregister(this);
    }

    public override string ToString() => $"NcclCommunicator(rank {Rank} of {Size}, {Backend.Name})";

    /// <summary>Throws <see cref="NcclException"/> if NCCL reported an asynchronous error (a failed peer, a network
    /// error) on this communicator; marks it failed first.</summary>
    internal void ThrowIfAsyncError()
    {
        // The reference keeps another thread's abort from freeing the communicator during this (non-blocking) query.
        bool referenced = false;
        try
        {
            _comm.DangerousAddRef(ref referenced);
        }
        catch (ObjectDisposedException)
        {
            return;
        }
        try
        {
            int asyncError;
            nint comm = _comm.DangerousGetHandle();
            int code = Nccl.CommGetAsyncError(comm, &asyncError);
            if (code != Nccl.Success || (asyncError != Nccl.Success && asyncError != Nccl.InProgress))
            {
                _comm.MarkFailed();
                throw Status.NcclError(code != Nccl.Success ? code : asyncError,
                    $"ncclCommGetAsyncError(rank {Rank} of {Size})", comm);
            }
        }
        finally
        {
            if (referenced)
            {
                _comm.DangerousRelease();
            }
        }
    }

    internal void MarkFailed() => _comm.MarkFailed();

    private void Issue(int code, string call)
    {
        if (code != Nccl.Success)
        {
            _comm.MarkFailed();
            throw Status.NcclError(code, $"{call} on rank {Rank} of {Size}", _comm.IsClosed ? 0 : _comm.DangerousGetHandle());
        }
    }

    private (CudaTensor Send, CudaTensor Recv) Pair(Tensor send, Tensor recv)
    {
        var s = Backend.Require(send, nameof(send));
        var r = Backend.Require(recv, nameof(recv));
        if (s.DType != r.DType)
        {
            throw new ArgumentException($"send has dtype {s.DType} but recv has {r.DType}", nameof(recv));
        }
        Cuda.Device.MakeCurrent(Backend.Device);
        return (s, r);
    }

    private static void Expect(CudaTensor tensor, long count, string name, string what)
    {
        if (tensor.Count != count)
        {
            throw new ArgumentException($"{name} has {tensor.Count} elements but must have {what} = {count}", name);
        }
    }

    private void CheckPeer(int peer, string name, bool excludeSelf = false)
    {
        if (peer < 0 || peer >= Size)
        {
            throw new ArgumentOutOfRangeException(name, peer, $"ranks of this group are 0 to {Size - 1}");
        }
        if (excludeSelf && peer == Rank)
        {
            throw new ArgumentException($"{name} {peer} is this rank itself", name);
        }
    }

    private static int DataType(DType dtype) => dtype switch
    {
        DType.Float32 => Nccl.Float32,
        DType.Float64 => Nccl.Float64,
        DType.BFloat16 => Nccl.BFloat16,
        DType.Float16 => Nccl.Float16,
        DType.Int32 => Nccl.Int32,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    private static int Op(ReduceOp op) => op switch
    {
        ReduceOp.Sum => Nccl.Sum,
        ReduceOp.Prod => Nccl.Prod,
        ReduceOp.Max => Nccl.Max,
        ReduceOp.Min => Nccl.Min,
        ReduceOp.Avg => Nccl.Avg,
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduction"),
    };
}
