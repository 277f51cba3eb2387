using System.Diagnostics;
using ModelParallel.Runtime.Cpu;

namespace ModelParallel.Runtime.Cuda;

/// <summary>What one rank posted for a collective of a <see cref="SameDeviceCommunicator"/>: name, element type,
/// per-rank count, reduction, root and tensors. Every rank of the group must post an equal description.</summary>
internal sealed record SameDeviceCall(string Name, DType DType, long Count, ReduceOp? Op, int Root, CudaTensor? Send)
{
    public string Describe() =>
        $"{Name}({Count} {DType} elements{(Op is { } op ? $", {op}" : "")}{(Root >= 0 ? $", root {Root}" : "")})";

    /// <summary>Null when every rank posted the same call; else a message naming the first difference.</summary>
    public static string? FindMismatch(SameDeviceCall?[] calls)
    {
        var first = calls[0]!;
        for (int q = 1; q < calls.Length; q++)
        {
            var call = calls[q]!;
            if (call.Name != first.Name || call.DType != first.DType || call.Count != first.Count || call.Op != first.Op
                || call.Root != first.Root)
            {
                return $"collective mismatch: rank 0 calls {first.Describe()} but rank {q} calls {call.Describe()}";
            }
        }
        return null;
    }
}

/// <summary>
/// What every group split from one <see cref="SameDeviceWorld"/> shares: the first rank failure, which aborts the
/// pending and later host rendezvous of all those groups.
/// </summary>
internal sealed class SameDeviceWorldState
{
    private readonly List<SameDeviceGroup> _groups = [];
    private Failure? _failure;

    internal sealed record Failure(int WorldRank, string Reason);

    internal Failure? Failed => Volatile.Read(ref _failure);

    internal void Register(SameDeviceGroup group)
    {
        lock (_groups)
        {
            _groups.Add(group);
        }
    }

    /// <summary>Records that <paramref name="worldRank"/> failed (the first failure wins) and wakes every waiter.
    /// Must not be called while holding a group's lock.</summary>
    internal void Fail(int worldRank, string reason)
    {
        if (Interlocked.CompareExchange(ref _failure, new Failure(worldRank, reason), null) is not null)
        {
            return;
        }
        SameDeviceGroup[] groups;
        lock (_groups)
        {
            groups = [.. _groups];
        }
        foreach (var group in groups)
        {
            group.WakeAll();
        }
    }
}

/// <summary>
/// The host side of one group of same-device ranks (threads of one process, one stream each): a reusable barrier with
/// per-rank call slots, each rank's ordering events, FIFO mailboxes for point-to-point messages, and split. Only host
/// rendezvous happens here; the device work and the events that order it are issued by
/// <see cref="SameDeviceCommunicator"/>. Every wait ends: with success, with <see cref="RankFailedException"/> when a
/// rank of the world failed or a rank it waits for disposed its communicator, or with <see cref="TimeoutException"/>
/// naming the missing ranks after <see cref="Timeout"/> (which fails the world).
/// </summary>
internal sealed class SameDeviceGroup
{
    private readonly object _gate = new();
    private readonly bool[] _arrived;
    private readonly bool[] _left;
    private readonly Dictionary<(int From, int To), Queue<Message>> _mailboxes = [];
    private readonly (SameDeviceGroup Group, int Rank)[] _splitResults;
    private readonly (int Color, int Key)[] _splitRequests;
    private int _arrivedCount;
    private long _generation;

    internal SameDeviceGroup(SameDeviceWorldState world, int[] worldRanks, TimeSpan timeout)
    {
        World = world;
        WorldRanks = worldRanks;
        Timeout = timeout;
        _arrived = new bool[worldRanks.Length];
        _left = new bool[worldRanks.Length];
        Calls = new SameDeviceCall?[worldRanks.Length];
        Ready = new CudaEvent?[worldRanks.Length];
        Done = new CudaEvent?[worldRanks.Length];
        _splitResults = new (SameDeviceGroup, int)[worldRanks.Length];
        _splitRequests = new (int, int)[worldRanks.Length];
        world.Register(this);
    }

    /// <summary>A point-to-point message waiting for its receiver: the sender's tensor and the event the sender
    /// recorded after the work that wrote it; the receiver sets <see cref="Done"/> (recorded after its copy) and
    /// <see cref="Delivered"/>.</summary>
    internal sealed class Message(CudaTensor tensor, CudaEvent ready)
    {
        public CudaTensor Tensor { get; } = tensor;

        public CudaEvent Ready { get; } = ready;

        public CudaEvent? Done { get; set; }

        public bool Delivered { get; set; }

        public string? Error { get; set; }
    }

    internal SameDeviceWorldState World { get; }

    /// <summary>World rank of each rank of this group.</summary>
    internal int[] WorldRanks { get; }

    internal int Size => WorldRanks.Length;

    internal TimeSpan Timeout { get; }

    /// <summary>Each rank's current collective; written before the first barrier of a collective and read by every
    /// rank until the second.</summary>
    internal SameDeviceCall?[] Calls { get; }

    /// <summary>Each rank's "my inputs are written" event of this group: recorded on the rank's stream before the first
    /// barrier of a collective, waited on by the readers between the two barriers.</summary>
    internal CudaEvent?[] Ready { get; }

    /// <summary>Each rank's "my reads are issued" event of this group: recorded after the rank's reads of its peers'
    /// buffers, before the second barrier; waited on by those peers after it.</summary>
    internal CudaEvent?[] Done { get; }

    /// <summary>Waits until every rank of the group has arrived.</summary>
    internal void Barrier(int rank, string op) => Guarded(rank, () => ArriveLocked(rank, op, null));

    /// <summary>Collective split: returns this rank's new group and its rank there.</summary>
    internal (SameDeviceGroup Group, int Rank) Split(int rank, int color, int key)
    {
        (SameDeviceGroup, int) result = default;
        Guarded(rank, () =>
        {
            _splitRequests[rank] = (color, key);
            ArriveLocked(rank, "Split", CreateSplitGroups);
            result = _splitResults[rank];
        });
        return result;
    }

    /// <summary>Queues a message for rank <paramref name="to"/>; <see cref="WaitDelivered"/> waits for its receipt.</summary>
    internal void Post(int from, int to, Message message) =>
        Guarded(from, () =>
        {
            ThrowIfWorldFailed(from, "Send");
            Mailbox(from, to).Enqueue(message);
            Monitor.PulseAll(_gate);
        });

    /// <summary>Waits until the receiver has issued its copy of the message; throws its mismatch error if any.</summary>
    internal void WaitDelivered(int from, int to, Message message)
    {
        Guarded(from, () => WaitLocked(from, "Send", () => message.Delivered, () => [to]));
        if (message.Error is { } error)
        {
            throw new ArgumentException(error);
        }
    }

    /// <summary>Takes the oldest message from rank <paramref name="from"/> to rank <paramref name="to"/>.</summary>
    internal Message Take(int to, int from)
    {
        Message? message = null;
        Guarded(to, () =>
        {
            var mailbox = Mailbox(from, to);
            WaitLocked(to, "Recv", () => mailbox.Count > 0, () => [from]);
            message = mailbox.Dequeue();
        });
        return message!;
    }

    /// <summary>Marks a taken message delivered (its copy issued, or refused with <paramref name="error"/>).</summary>
    internal void Deliver(Message message, CudaEvent? done, string? error)
    {
        lock (_gate)
        {
            message.Done = done;
            message.Error = error;
            message.Delivered = true;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Records that <paramref name="rank"/> disposed its communicator: calls that wait for it fail naming it.
    /// The last rank to leave destroys every rank's events of this group: before then a peer may still be issuing a
    /// wait on them (the device keeps an event that work still waits on until that work is done).</summary>
    internal void Leave(int rank)
    {
        bool last;
        lock (_gate)
        {
            _left[rank] = true;
            last = _left.All(left => left);
            Monitor.PulseAll(_gate);
        }
        if (last)
        {
            foreach (var cudaEvent in Ready.Concat(Done))
            {
                cudaEvent?.Dispose();
            }
        }
    }

    /// <summary>Wakes every waiter so that it sees a world failure.</summary>
    internal void WakeAll()
    {
        lock (_gate)
        {
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Runs <paramref name="body"/> under the lock; a timeout inside fails the world (outside the lock) and rethrows.</summary>
    private void Guarded(int rank, Action body)
    {
        try
        {
            lock (_gate)
            {
                body();
            }
        }
        catch (TimeoutException ex)
        {
            World.Fail(WorldRanks[rank], ex.Message);
            throw;
        }
    }

    private void ArriveLocked(int rank, string op, Action? onLastArrival)
    {
        ThrowIfWorldFailed(rank, op);
        long generation = _generation;
        _arrived[rank] = true;
        _arrivedCount++;
        if (_arrivedCount == Size)
        {
            onLastArrival?.Invoke();
            Array.Clear(_arrived);
            _arrivedCount = 0;
            _generation++;
            Monitor.PulseAll(_gate);
            return;
        }
        WaitLocked(rank, op, () => _generation != generation,
            () => Enumerable.Range(0, Size).Where(q => !_arrived[q]));
    }

    private void WaitLocked(int rank, string op, Func<bool> done, Func<IEnumerable<int>> missing)
    {
        long start = Stopwatch.GetTimestamp();
        while (!done())
        {
            ThrowIfWorldFailed(rank, op);
            foreach (int q in missing())
            {
                if (_left[q])
                {
                    throw new RankFailedException(WorldRanks[q],
                        $"{op} on rank {rank} cannot complete: rank {q} (world rank {WorldRanks[q]}) disposed its communicator");
                }
            }
            var remaining = Timeout - Stopwatch.GetElapsedTime(start);
            if (remaining <= TimeSpan.Zero)
            {
                throw new TimeoutException(
                    $"{op} on rank {rank} (world rank {WorldRanks[rank]}) timed out after {Timeout.TotalSeconds:0.###} s " +
                    $"waiting for rank(s) {string.Join(", ", missing())} of a group of {Size}");
            }
            Monitor.Wait(_gate, remaining > TimeSpan.FromDays(1) ? TimeSpan.FromDays(1) : remaining);
        }
    }

    private void ThrowIfWorldFailed(int rank, string op)
    {
        if (World.Failed is { } failure)
        {
            throw new RankFailedException(failure.WorldRank, $"{op} on rank {rank} aborted: {failure.Reason}");
        }
    }

    private Queue<Message> Mailbox(int from, int to)
    {
        if (!_mailboxes.TryGetValue((from, to), out var mailbox))
        {
            mailbox = new Queue<Message>();
            _mailboxes.Add((from, to), mailbox);
        }
        return mailbox;
    }

    /// <summary>Run by the last rank to arrive at a split: one new group per color, ranks ordered by key then rank.</summary>
    private void CreateSplitGroups()
    {
        foreach (var members in Enumerable.Range(0, Size)
                     .GroupBy(q => _splitRequests[q].Color)
                     .Select(g => g.OrderBy(q => _splitRequests[q].Key).ThenBy(q => q).ToArray()))
        {
            var group = new SameDeviceGroup(World, [.. members.Select(q => WorldRanks[q])], Timeout);
            for (int i = 0; i < members.Length; i++)
            {
                _splitResults[members[i]] = (group, i);
            }
        }
    }
}
