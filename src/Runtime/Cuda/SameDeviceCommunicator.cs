using ModelParallel.Interop;
using ModelParallel.Runtime.Cpu;

namespace ModelParallel.Runtime.Cuda;

/// <summary>
/// Collectives among ranks that are threads of one process sharing one GPU, each with its own
/// <see cref="CudaBackend"/> (its own stream and allocator). Like NCCL, every call is issued on the calling rank's
/// stream and returns without waiting for the GPU; the ranks meet on the host (collectives are collective), then each
/// rank reads its peers' buffers directly (one device, one context: plain device pointers) on its own stream. A rank
/// only ever writes its own buffers.
/// <para>Ordering, with events recorded and waited on the ranks' streams (no host waits for the GPU):</para>
/// <list type="bullet">
/// <item>Collectives: each rank records its Ready event after its earlier work, then the ranks meet; each rank's stream
/// waits on every peer's Ready before reading the peers' send buffers, and records its Done event after those reads;
/// the ranks meet again; each rank's stream waits on every peer's Done before its later work (so a send buffer is not
/// overwritten while a peer still reads it) and only then writes results that land in its own send buffer (in place).</item>
/// <item>Send/Recv: the sender records an event after its earlier work and posts the message; the receiver's stream
/// waits on it, copies, records an event that the sender's stream waits on before its later work. Send returns once
/// the receiver has issued its copy (a host rendezvous, not a GPU wait).</item>
/// </list>
/// <para>Every event waited on was recorded before the wait was issued, so the streams cannot deadlock on the GPU;
/// host waits end when a rank of the world fails (<see cref="RankFailedException"/>), when a rank waited for disposed
/// its communicator, or after <see cref="Timeout"/> (<see cref="TimeoutException"/>, failing the world).</para>
/// <para>Reductions: Sum and Avg accumulate in float32 in rank order (Avg multiplies each input by 1/Size first, as
/// NCCL's pre-multiplied sum does) and round once to the tensor's dtype; Max is exact. Every rank issues the same
/// operations in the same order, so every rank gets bitwise the same result. Reductions take Float32 and BFloat16;
/// Prod and Min throw <see cref="NotSupportedException"/>. Copies (all-gather, broadcast, send/recv) take any dtype.</para>
/// </summary>
public sealed class SameDeviceCommunicator : ICommunicator
{
    private readonly SameDeviceGroup _group;
    private bool _disposed;

    internal SameDeviceCommunicator(SameDeviceGroup group, int rank, CudaBackend backend)
    {
        _group = group;
        Rank = rank;
        Backend = backend;
        Device.MakeCurrent(backend.Device);
        group.Ready[rank] = new CudaEvent(backend.Device, timing: false);
        group.Done[rank] = new CudaEvent(backend.Device, timing: false);
    }

    public CudaBackend Backend { get; }

    public int Rank { get; }

    public int Size => _group.Size;

    /// <summary>How long any call waits on the host for the other ranks before throwing <see cref="TimeoutException"/>.</summary>
    public TimeSpan Timeout => _group.Timeout;

    public void AllReduce(Tensor send, Tensor recv, ReduceOp op = ReduceOp.Sum)
    {
        var (s, r) = Pair(send, recv);
        Expect(r, s.Count, nameof(recv), "send.Count");
        RequireSameOrDisjoint(nameof(AllReduce), s, r);
        RequireReduction(op, s.DType);
        using var reduced = Backend.Allocate(ReductionType(op, s.DType), s.Count);
        Collective(new SameDeviceCall(nameof(AllReduce), s.DType, s.Count, op, -1, s),
            calls => ReduceInto(reduced, calls.Select(c => c.Send!).ToArray(), op),
            () => Backend.Kernels.Convert(r, reduced));
    }

    public void AllGather(Tensor send, Tensor recv)
    {
        var (s, r) = Pair(send, recv);
        Expect(r, Size * s.Count, nameof(recv), $"Size ({Size}) x send.Count ({s.Count})");
        var own = (CudaTensor)r.Slice(Rank * s.Count, s.Count);
        bool inPlace = Overlaps(s, r);
        if (inPlace && !SameElements(s, own))
        {
            throw new ArgumentException(
                $"AllGather: send overlaps recv but is not its slice at rank {Rank} x {s.Count} elements", nameof(send));
        }
        // Each rank writes the blocks of its recv; in place, its own block (its send, which peers read) is already there.
        Collective(new SameDeviceCall(nameof(AllGather), s.DType, s.Count, null, -1, s), calls =>
        {
            for (int q = 0; q < Size; q++)
            {
                if (q != Rank || !inPlace)
                {
                    Backend.Kernels.Convert(r.Slice(q * s.Count, s.Count), calls[q].Send!);
                }
            }
        }, null);
    }

    public void ReduceScatter(Tensor send, Tensor recv, ReduceOp op = ReduceOp.Sum)
    {
        var (s, r) = Pair(send, recv);
        Expect(s, Size * r.Count, nameof(send), $"Size ({Size}) x recv.Count ({r.Count})");
        if (Overlaps(s, r) && !SameElements(r, (CudaTensor)s.Slice(Rank * r.Count, r.Count)))
        {
            throw new ArgumentException(
                $"ReduceScatter: recv overlaps send but is not its slice at rank {Rank} x {r.Count} elements", nameof(recv));
        }
        RequireReduction(op, s.DType);
        using var reduced = Backend.Allocate(ReductionType(op, s.DType), r.Count);
        long offset = Rank * r.Count, count = r.Count;
        Collective(new SameDeviceCall(nameof(ReduceScatter), s.DType, r.Count, op, -1, s),
            calls => ReduceInto(reduced, calls.Select(c => c.Send!.Slice(offset, count)).ToArray(), op),
            () => Backend.Kernels.Convert(r, reduced));
    }

    public void Broadcast(Tensor send, Tensor recv, int root)
    {
        CheckPeer(root, nameof(root));
        var (s, r) = Pair(send, recv);
        Expect(r, s.Count, nameof(recv), "send.Count");
        RequireSameOrDisjoint(nameof(Broadcast), s, r);
        // Only the root's send is read by peers; no rank's recv is, so every rank writes its recv right away.
        Collective(new SameDeviceCall(nameof(Broadcast), s.DType, s.Count, null, root, s), calls =>
        {
            var from = calls[root].Send!;
            if (!SameElements(from, r))
            {
                Backend.Kernels.Convert(r, from);
            }
        }, null);
    }

    public void Reduce(Tensor send, Tensor recv, ReduceOp op, int root)
    {
        CheckPeer(root, nameof(root));
        var s = Require(send, nameof(send));
        RequireReduction(op, s.DType);
        CudaTensor? r = null;
        if (Rank == root)
        {
            r = Require(recv, nameof(recv));
            if (r.DType != s.DType)
            {
                throw new ArgumentException($"send has dtype {s.DType} but recv has {r.DType}", nameof(recv));
            }
            Expect(r, s.Count, nameof(recv), "send.Count");
            RequireSameOrDisjoint(nameof(Reduce), s, r);
        }
        using var reduced = r is null ? null : Backend.Allocate(ReductionType(op, s.DType), s.Count);
        Collective(new SameDeviceCall(nameof(Reduce), s.DType, s.Count, op, root, s),
            calls =>
            {
                if (reduced is not null)
                {
                    ReduceInto(reduced, calls.Select(c => c.Send!).ToArray(), op);
                }
            },
            () =>
            {
                if (r is not null)
                {
                    Backend.Kernels.Convert(r, reduced!);
                }
            });
    }

    public void Send(Tensor send, int peer)
    {
        CheckPeer(peer, nameof(peer), excludeSelf: true);
        var s = Require(send, nameof(send));
        var message = Post(s, peer);
        Complete(message, peer);
    }

    public void Recv(Tensor recv, int peer)
    {
        CheckPeer(peer, nameof(peer), excludeSelf: true);
        var r = Require(recv, nameof(recv));
        Receive(r, peer, Backend.Stream);
    }

    public void SendRecv(Tensor send, int sendPeer, Tensor recv, int recvPeer)
    {
        CheckPeer(sendPeer, nameof(sendPeer), excludeSelf: true);
        CheckPeer(recvPeer, nameof(recvPeer), excludeSelf: true);
        var (s, r) = Pair(send, recv);
        if (Overlaps(s, r))
        {
            throw new ArgumentException("SendRecv: send and recv overlap", nameof(recv));
        }
        // Posting first means that ranks exchanging in a ring each find their message waiting: no deadlock.
        var message = Post(s, sendPeer);
        try
        {
            Receive(r, recvPeer, Backend.Stream);
        }
        finally
        {
            Complete(message, sendPeer);
        }
    }

    /// <summary>
    /// The receives are copied on this rank's transfer stream, after its compute stream's work so far and the sender's
    /// data; the returned group orders the compute stream after them and after the peers' copies of what this rank sent.
    /// </summary>
    public TransferGroup BatchSendRecv(IReadOnlyList<PeerTransfer> transfers)
    {
        ArgumentNullException.ThrowIfNull(transfers);
        var owned = transfers.Select(t =>
        {
            CheckPeer(t.Peer, nameof(transfers), excludeSelf: true);
            return (Tensor: Require(t.Tensor, nameof(transfers)), t.Peer, t.IsSend);
        }).ToList();
        if (owned.Count == 0)
        {
            return TransferGroup.Completed;
        }
        var events = new List<CudaEvent>();
        // Every send is posted before any receive, so ranks exchanging with several peers find their messages waiting.
        var posted = owned.Where(t => t.IsSend).Select(t => (t.Peer, Message: Post(t.Tensor, t.Peer))).ToList();
        try
        {
            var receives = owned.Where(t => !t.IsSend).ToList();
            if (receives.Count > 0)
            {
                Device.MakeCurrent(Backend.Device);
                using (var ready = new CudaEvent(Backend.Device, timing: false))
                {
                    // The receive buffers were allocated (and maybe last used) on the compute stream.
                    ready.Record(Backend.Stream);
                    Backend.TransferStream.Wait(ready);
                }
                foreach (var t in receives)
                {
                    Receive(t.Tensor, t.Peer, Backend.TransferStream);
                }
                var received = new CudaEvent(Backend.Device, timing: false);
                received.Record(Backend.TransferStream);
                events.Add(received);
            }
        }
        finally
        {
            foreach (var (peer, message) in posted)
            {
                _group.WaitDelivered(Rank, peer, message);
                if (message.Delivered)
                {
                    message.Ready.Dispose();
                }
                if (message.Done is { } done)
                {
                    events.Add(done);
                }
            }
        }
        return CudaTransfers.Group(Backend.Stream, events);
    }

    /// <summary>Takes the oldest message from <paramref name="peer"/> and copies it into <paramref name="recv"/> on
    /// <paramref name="stream"/> (this rank's compute or transfer stream) after the sender's event; the event recorded
    /// after the copy goes back to the sender.</summary>
    private void Receive(CudaTensor recv, int peer, CudaStream stream)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var message = _group.Take(Rank, peer);
        var sent = message.Tensor;
        if (sent.DType != recv.DType || sent.Count != recv.Count)
        {
            string error = $"Send from rank {peer} has {sent.Count} {sent.DType} elements but Recv on rank {Rank} " +
                           $"expects {recv.Count} {recv.DType} elements";
            _group.Deliver(message, null, error);
            throw new ArgumentException(error);
        }
        CudaEvent? done = null;
        try
        {
            Device.MakeCurrent(Backend.Device);
            stream.Wait(message.Ready);
            Status.CheckCuda(CudaRuntime.MemcpyAsync(recv.Pointer, sent.Pointer, (nuint)recv.Bytes, CudaRuntime.MemcpyDeviceToDevice,
                stream.Handle), $"cudaMemcpyAsync(device to device, {recv.Bytes} bytes, rank {peer} to {Rank})");
            done = new CudaEvent(Backend.Device, timing: false);
            done.Record(stream);
        }
        catch (Exception e)
        {
            done?.Dispose();
            _group.Deliver(message, null, $"Recv on rank {Rank} failed to copy from rank {peer}: {e.Message}");
            throw;
        }
        _group.Deliver(message, done, null);
    }

    /// <summary>Collective over this group: ranks passing the same <paramref name="color"/> (&gt;= 0) form a new group
    /// on the same backends, ordered by <paramref name="key"/> then by rank.</summary>
    public ICommunicator Split(int color, int key)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(color);
        var (group, rank) = _group.Split(Rank, color, key);
        return new SameDeviceCommunicator(group, rank, Backend);
    }

    /// <summary>Leaves the group: later calls of peers that wait for this rank throw <see cref="RankFailedException"/>.
    /// Work already issued stays ordered by its events; the backend's stream is not waited for.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _group.Leave(Rank);
        }
    }

    public override string ToString() => $"SameDeviceCommunicator(rank {Rank} of {Size}, {Backend.Name})";

    /// <summary>
    /// Runs one collective: records this rank's Ready event, meets the other ranks, checks that every rank posted the
    /// same call, waits on the peers' Ready events and issues <paramref name="read"/> (which may read every rank's send
    /// buffer and write only buffers no peer reads), records Done, meets again, waits on the peers' Done events and
    /// issues <paramref name="write"/> (which may write this rank's send buffer).
    /// </summary>
    private void Collective(SameDeviceCall call, Action<SameDeviceCall[]> read, Action? write)
    {
        var stream = Backend.Stream;
        Device.MakeCurrent(Backend.Device);
        _group.Calls[Rank] = call;
        _group.Ready[Rank]!.Record(stream);
        _group.Barrier(Rank, call.Name);
        var calls = _group.Calls.Select(c => c!).ToArray();
        string? mismatch = SameDeviceCall.FindMismatch(calls);
        if (mismatch is null)
        {
            for (int q = 0; q < Size; q++)
            {
                if (q != Rank)
                {
                    stream.Wait(_group.Ready[q]!);
                }
            }
            read(calls);
        }
        _group.Done[Rank]!.Record(stream);
        _group.Barrier(Rank, call.Name);
        if (mismatch is not null)
        {
            throw new ArgumentException($"{call.Name} on rank {Rank}: {mismatch}");
        }
        for (int q = 0; q < Size; q++)
        {
            if (q != Rank)
            {
                stream.Wait(_group.Done[q]!);
            }
        }
        write?.Invoke();
    }

    /// <summary>reduced = op over <paramref name="inputs"/> in rank order, on this rank's stream: Sum and Avg from zero
    /// by y += alpha x in float32, Max by pairwise maxima in the inputs' dtype.</summary>
    private void ReduceInto(Tensor reduced, Tensor[] inputs, ReduceOp op)
    {
        var kernels = Backend.Kernels;
        if (op == ReduceOp.Max)
        {
            kernels.Convert(reduced, inputs[0]);
            for (int q = 1; q < inputs.Length; q++)
            {
                kernels.Max(reduced, reduced, inputs[q]);
            }
            return;
        }
        float alpha = op == ReduceOp.Avg ? 1f / inputs.Length : 1f;
        kernels.Fill(reduced, 0);
        foreach (var input in inputs)
        {
            kernels.Axpy(reduced, alpha, input);
        }
    }

    /// <summary>Records an event after this rank's earlier work on <paramref name="send"/> and posts the message.</summary>
    private SameDeviceGroup.Message Post(CudaTensor send, int peer)
    {
        Device.MakeCurrent(Backend.Device);
        var ready = new CudaEvent(Backend.Device, timing: false);
        try
        {
            ready.Record(Backend.Stream);
            var message = new SameDeviceGroup.Message(send, ready);
            _group.Post(Rank, peer, message);
            return message;
        }
        catch
        {
            ready.Dispose();
            throw;
        }
    }

    /// <summary>Waits (on the host) until the receiver has issued its copy, then orders this rank's later work after
    /// that copy. The events are destroyed once the receiver is done with them (CUDA keeps one that work still waits on).</summary>
    private void Complete(SameDeviceGroup.Message message, int peer)
    {
        try
        {
            _group.WaitDelivered(Rank, peer, message);
            if (message.Done is { } done)
            {
                Device.MakeCurrent(Backend.Device);
                Backend.Stream.Wait(done);
            }
        }
        finally
        {
            // Undelivered (the world failed), the receiver may still be about to use the event: leave it to its finalizer.
            if (message.Delivered)
            {
                message.Ready.Dispose();
                message.Done?.Dispose();
            }
        }
    }

    private CudaTensor Require(Tensor tensor, string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Backend.Require(tensor, name);
    }

    private (CudaTensor Send, CudaTensor Recv) Pair(Tensor send, Tensor recv)
    {
        var s = Require(send, nameof(send));
        var r = Require(recv, nameof(recv));
        if (s.DType != r.DType)
        {
            throw new ArgumentException($"send has dtype {s.DType} but recv has {r.DType}", nameof(recv));
        }
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

    /// <summary>Sum, Avg and Max of Float32 or BFloat16; anything else throws <see cref="NotSupportedException"/>
    /// naming it (on every rank, before the ranks meet).</summary>
    private static void RequireReduction(ReduceOp op, DType dtype)
    {
        if (!Enum.IsDefined(op))
        {
            throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduction");
        }
        if (op is not (ReduceOp.Sum or ReduceOp.Avg or ReduceOp.Max))
        {
            throw new NotSupportedException(
                $"the same-device communicator reduces with Sum, Avg and Max; {op} is not supported");
        }
        if (dtype is not (DType.Float32 or DType.BFloat16))
        {
            throw new NotSupportedException(
                $"the same-device communicator reduces Float32 and BFloat16 tensors; {dtype} is not supported");
        }
    }

    /// <summary>Sum and Avg accumulate in float32; Max is exact in the tensors' own dtype.</summary>
    private static DType ReductionType(ReduceOp op, DType dtype) => op == ReduceOp.Max ? dtype : DType.Float32;

    private static void RequireSameOrDisjoint(string what, CudaTensor send, CudaTensor recv)
    {
        if (Overlaps(send, recv) && !SameElements(send, recv))
        {
            throw new ArgumentException($"{what}: send and recv partially overlap (in place needs the same elements)");
        }
    }

    private static bool Overlaps(CudaTensor a, CudaTensor b) =>
        a.Bytes > 0 && b.Bytes > 0 && a.Pointer < b.Pointer + (nint)b.Bytes && b.Pointer < a.Pointer + (nint)a.Bytes;

    private static bool SameElements(CudaTensor a, CudaTensor b) => a.Pointer == b.Pointer && a.Bytes == b.Bytes;
}
