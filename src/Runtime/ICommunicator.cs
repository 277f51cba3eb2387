namespace ModelParallel.Runtime;

/// <summary>One point-to-point transfer of <see cref="ICommunicator.BatchSendRecv"/>: send <see cref="Tensor"/> to
/// <see cref="Peer"/>, or receive it from <see cref="Peer"/>.</summary>
public readonly record struct PeerTransfer(Tensor Tensor, int Peer, bool IsSend)
{
    public static PeerTransfer Send(Tensor tensor, int peer) => new(tensor, peer, true);

    public static PeerTransfer Recv(Tensor tensor, int peer) => new(tensor, peer, false);

    public override string ToString() => IsSend ? $"send {Tensor.Count} to {Peer}" : $"receive {Tensor.Count} from {Peer}";
}

/// <summary>
/// A group of ranks and the collectives among them. Every call is issued in order on the
/// owning backend's stream (asynchronous on CUDA, completed on return on the CPU backend).
/// Counts come from the tensors: send and receive must have matching dtypes, and the sizes each
/// collective documents; a mismatch throws <see cref="ArgumentException"/> naming both sizes.
/// Send and receive may be the same tensor (in place) where noted.
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This rank's index in the group, 0 to <see cref="Size"/>-1.</summary>
    int Rank { get; }

    /// <summary>Number of ranks in the group.</summary>
    int Size { get; }

    /// <summary>recv = op over ranks of send; recv.Count == send.Count; in place allowed.</summary>
    void AllReduce(Tensor send, Tensor recv, ReduceOp op = ReduceOp.Sum);

    /// <summary>recv = concatenation of every rank's send in rank order; recv.Count == Size * send.Count.
    /// In place when send is the slice of recv at Rank * send.Count.</summary>
    void AllGather(Tensor send, Tensor recv);

    /// <summary>recv = block Rank of (op over ranks of send); send.Count == Size * recv.Count.</summary>
    void ReduceScatter(Tensor send, Tensor recv, ReduceOp op = ReduceOp.Sum);

    /// <summary>recv = root's send on every rank; counts equal; in place allowed.</summary>
    void Broadcast(Tensor send, Tensor recv, int root);

    /// <summary>On root, recv = op over ranks of send; recv is ignored elsewhere.</summary>
    void Reduce(Tensor send, Tensor recv, ReduceOp op, int root);

    /// <summary>Sends the tensor to rank <paramref name="peer"/> of this group.</summary>
    void Send(Tensor send, int peer);

    /// <summary>Receives a tensor of recv.Count elements from rank <paramref name="peer"/>.</summary>
    void Recv(Tensor recv, int peer);

    /// <summary>Sends to <paramref name="sendPeer"/> and receives from <paramref name="recvPeer"/> as one
    /// operation, so that ranks exchanging with each other cannot deadlock.</summary>
    void SendRecv(Tensor send, int sendPeer, Tensor recv, int recvPeer);

    /// <summary>
    /// Issues every transfer as one group (ncclGroupStart/End, torch's batch_isend_irecv): all sends and receives are
    /// posted together and complete together, so ranks exchanging with several peers in any order cannot deadlock.
    /// Transfers between the same two ranks match in the order given. On CUDA they run on the backend's transfer stream
    /// after the work already issued on its compute stream, so they overlap the compute issued after them; the returned
    /// group says when received tensors may be read and sent ones reused (<see cref="TransferGroup"/>).
    /// </summary>
    TransferGroup BatchSendRecv(IReadOnlyList<PeerTransfer> transfers);

    /// <summary>Collective over this group: ranks with the same color form a new group,
    /// ordered by key (ties by rank). Every rank of this group must call it.</summary>
    ICommunicator Split(int color, int key);
}
