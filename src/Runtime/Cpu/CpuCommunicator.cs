namespace ModelParallel.Runtime.Cpu;

/// <summary>
/// Collectives among ranks that are threads of one process, over shared memory. Every call completes on
/// return. A call never hangs: when a rank of the world fails, the pending and later calls throw
/// <see cref="RankFailedException"/> naming it, as does a call that waits for a rank of this group that has
/// disposed its communicator; a call that
/// waits longer than <see cref="Timeout"/> throws <see cref="TimeoutException"/> naming the missing ranks
/// and aborts the world's other pending calls.
/// </summary>
public sealed class CpuCommunicator : ICommunicator
{
    /// <summary>How long a collective waits for the other ranks unless the world says otherwise.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    private readonly CpuGroup _group;
    private readonly CpuBackend _backend;
    private bool _disposed;

    internal CpuCommunicator(CpuGroup group, int rank, CpuBackend backend)
    {
        _group = group;
        Rank = rank;
        _backend = backend;
    }

    public int Rank { get; }

    public int Size => _group.Size;

    /// <summary>How long any call waits for the other ranks before throwing <see cref="TimeoutException"/>.</summary>
    public TimeSpan Timeout => _group.Timeout;

    public void AllReduce(Tensor send, Tensor recv, ReduceOp op = ReduceOp.Sum)
    {
        var (s, r) = Pair(send, recv);
        RequireEqualCounts("AllReduce", s, r);
        RequireSameOrDisjoint("AllReduce", s, r);
        RequireOp(op);
        Collective(new CpuCollectiveCall(nameof(AllReduce), s.DType, s.Count, op, -1, s, r), calls =>
        {
            // Rank q reduces chunk q of every send and writes it into every recv: a chunk is touched by one rank only,
            // which keeps in-place calls safe.
            var (offset, count) = Chunk(s.Length, Size, Rank);
            if (count == 0)
            {
                return;
            }
            var reduced = CpuReduction.Combine(calls.Select(c => c.Send!).ToArray(), offset, count, op);
            foreach (var call in calls)
            {
                Array.Copy(reduced, 0, call.Recv!.Storage, call.Recv.Offset + offset, count);
            }
        });
    }

    public void AllGather(Tensor send, Tensor recv)
    {
        var (s, r) = Pair(send, recv);
        if (r.Count != Size * s.Count)
        {
            throw new ArgumentException(
                $"AllGather: recv has {r.Count} elements but {Size} ranks x send {s.Count} elements = {Size * s.Count}");
        }
        bool inPlace = s.Overlaps(r);
        if (inPlace && !(ReferenceEquals(s.Storage, r.Storage) && s.Offset == r.Offset + Rank * s.Length))
        {
            throw new ArgumentException(
                $"AllGather: send overlaps recv but is not its slice at rank {Rank} x {s.Count} elements");
        }
        Collective(new CpuCollectiveCall(nameof(AllGather), s.DType, s.Count, null, -1, s, r), calls =>
        {
            for (int q = 0; q < Size; q++)
            {
                if (q != Rank || !inPlace)
                {
                    var from = calls[q].Send!;
                    Array.Copy(from.Storage, from.Offset, r.Storage, r.Offset + q * s.Length, s.Length);
                }
            }
        });
    }

    public void ReduceScatter(Tensor send, Tensor recv, ReduceOp op = ReduceOp.Sum)
    {
        var (s, r) = Pair(send, recv);
        if (s.Count != Size * r.Count)
        {
            throw new ArgumentException(
                $"ReduceScatter: send has {s.Count} elements but {Size} ranks x recv {r.Count} elements = {Size * r.Count}");
        }
        if (s.Overlaps(r) && !(ReferenceEquals(s.Storage, r.Storage) && r.Offset == s.Offset + Rank * r.Length))
        {
            throw new ArgumentException(
                $"ReduceScatter: recv overlaps send but is not its slice at rank {Rank} x {r.Count} elements");
        }
        RequireOp(op);
        Collective(new CpuCollectiveCall(nameof(ReduceScatter), s.DType, r.Count, op, -1, s, r), calls =>
        {
            if (r.Length == 0)
            {
                return;
            }
            var reduced = CpuReduction.Combine(calls.Select(c => c.Send!).ToArray(), Rank * r.Length, r.Length, op);
            Array.Copy(reduced, 0, r.Storage, r.Offset, r.Length);
        });
    }

    public void Broadcast(Tensor send, Tensor recv, int root)
    {
        var (s, r) = Pair(send, recv);
        RequirePeer(root, nameof(root));
        RequireEqualCounts("Broadcast", s, r);
        RequireSameOrDisjoint("Broadcast", s, r);
        Collective(new CpuCollectiveCall(nameof(Broadcast), s.DType, s.Count, null, root, s, r), calls =>
        {
            var from = calls[root].Send!;
            if (!from.SameElements(r))
            {
                Array.Copy(from.Storage, from.Offset, r.Storage, r.Offset, r.Length);
            }
        });
    }

    public void Reduce(Tensor send, Tensor recv, ReduceOp op, int root)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var s = _backend.Own(send, nameof(send));
        RequirePeer(root, nameof(root));
        RequireOp(op);
        CpuTensor? r = null;
        if (Rank == root)
        {
            r = _backend.Own(recv, nameof(recv));
            RequireSameDType("Reduce", s, r);
            RequireEqualCounts("Reduce", s, r);
            RequireSameOrDisjoint("Reduce", s, r);
        }
        Collective(new CpuCollectiveCall(nameof(Reduce), s.DType, s.Count, op, root, s, r), calls =>
        {
            if (r is null || r.Length == 0)
            {
                return;
            }
            var reduced = CpuReduction.Combine(calls.Select(c => c.Send!).ToArray(), 0, r.Length, op);
            Array.Copy(reduced, 0, r.Storage, r.Offset, r.Length);
        });
    }

    public void Send(Tensor send, int peer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var s = _backend.Own(send, nameof(send));
        RequirePeer(peer, nameof(peer));
        var message = _group.Post(Rank, peer, s);
        _group.WaitDelivered(Rank, peer, message);
    }

    public void Recv(Tensor recv, int peer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var r = _backend.Own(recv, nameof(recv));
        RequirePeer(peer, nameof(peer));
        _group.Receive(Rank, peer, r);
    }

    public void SendRecv(Tensor send, int sendPeer, Tensor recv, int recvPeer)
    {
        var (s, r) = Pair(send, recv);
        RequirePeer(sendPeer, nameof(sendPeer));
        RequirePeer(recvPeer, nameof(recvPeer));
        if (s.Overlaps(r))
        {
            throw new ArgumentException("SendRecv: send and recv overlap");
        }
        var message = _group.Post(Rank, sendPeer, s);
        try
        {
            _group.Receive(Rank, recvPeer, r);
        }
        finally
        {
            _group.WaitDelivered(Rank, sendPeer, message);
        }
    }

    public TransferGroup BatchSendRecv(IReadOnlyList<PeerTransfer> transfers)
    {
        ArgumentNullException.ThrowIfNull(transfers);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var owned = transfers.Select(t =>
        {
            RequirePeer(t.Peer, nameof(transfers));
            return (Tensor: _backend.Own(t.Tensor, nameof(transfers)), t.Peer, t.IsSend);
        }).ToList();
        var posted = owned.Where(t => t.IsSend).Select(t => (t.Peer, Message: _group.Post(Rank, t.Peer, t.Tensor))).ToList();
        try
        {
            foreach (var t in owned.Where(t => !t.IsSend))
            {
                _group.Receive(Rank, t.Peer, t.Tensor);
            }
        }
        finally
        {
            foreach (var (peer, message) in posted)
            {
                _group.WaitDelivered(Rank, peer, message);
            }
        }
        return TransferGroup.Completed;
    }

    public ICommunicator Split(int color, int key)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(color);
        var (group, rank) = _group.Split(Rank, color, key);
        return new CpuCommunicator(group, rank, _backend);
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _group.Leave(Rank);
        }
    }

    /// <summary>Element range [offset, offset + count) of chunk <paramref name="index"/> when splitting
    /// <paramref name="length"/> elements into <paramref name="parts"/> nearly equal chunks.</summary>
    private static (int Offset, int Count) Chunk(int length, int parts, int index)
    {
        int baseCount = length / parts, extra = length % parts;
        int offset = index * baseCount + Math.Min(index, extra);
        return (offset, baseCount + (index < extra ? 1 : 0));
    }

    /// <summary>Posts this rank's call, waits for all, checks that every rank posted the same call, runs
    /// <paramref name="work"/> (reading the others' tensors), and waits again so that no tensor changes while read.</summary>
    private void Collective(CpuCollectiveCall call, Action<CpuCollectiveCall[]> work)
    {
        _group.Calls[Rank] = call;
        _group.Barrier(Rank, call.Name);
        var calls = _group.Calls.Select(c => c!).ToArray();
        string? mismatch = CpuCollectiveCall.FindMismatch(calls);
        if (mismatch is null)
        {
            work(calls);
        }
        _group.Barrier(Rank, call.Name);
        if (mismatch is not null)
        {
            throw new ArgumentException($"{call.Name} on rank {Rank}: {mismatch}");
        }
    }

    private (CpuTensor Send, CpuTensor Recv) Pair(Tensor send, Tensor recv)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var s = _backend.Own(send, nameof(send));
        var r = _backend.Own(recv, nameof(recv));
        RequireSameDType(nameof(send), s, r);
        return (s, r);
    }

    private static void RequireSameDType(string what, CpuTensor send, CpuTensor recv)
    {
        if (send.DType != recv.DType)
        {
            throw new ArgumentException($"{what}: send is {send.DType} but recv is {recv.DType}");
        }
    }

    private static void RequireEqualCounts(string what, CpuTensor send, CpuTensor recv)
    {
        if (send.Count != recv.Count)
        {
            throw new ArgumentException($"{what}: send has {send.Count} elements but recv has {recv.Count}");
        }
    }

    private static void RequireSameOrDisjoint(string what, CpuTensor send, CpuTensor recv)
    {
        if (send.Overlaps(recv) && !send.SameElements(recv))
        {
            throw new ArgumentException($"{what}: send and recv partially overlap (in place needs the same elements)");
        }
    }

    private static void RequireOp(ReduceOp op)
    {
        if (!Enum.IsDefined(op))
        {
            throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduction");
        }
    }

    private void RequirePeer(int peer, string name)
    {
        if (peer < 0 || peer >= Size)
        {
            throw new ArgumentOutOfRangeException(name, peer, $"{name} {peer} is not a rank of this group of {Size}");
        }
    }
}
