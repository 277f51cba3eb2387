using System.Diagnostics;

namespace ModelParallel.Runtime.Cpu;

/// <summary>
/// State shared by the ranks (threads) of one communicator group: a reusable barrier with per-rank call
/// slots, FIFO mailboxes for point-to-point messages, and failure handling. Every wait ends: with success,
/// with <see cref="RankFailedException"/> when a rank of the world failed or a rank it waits for disposed its
/// communicator, or with <see cref="TimeoutException"/> naming the missing ranks after <see cref="Timeout"/>.
/// </summary>
internal sealed class CpuGroup
{
    private readonly object _gate = new();
    private readonly bool[] _arrived;
    private readonly bool[] _left;
    private readonly Dictionary<(int From, int To), Queue<Message>> _mailboxes = [];
    private readonly (CpuGroup Group, int Rank)[] _splitResults;
    private readonly (int Color, int Key)[] _splitRequests;
    private int _arrivedCount;
    private long _generation;

    internal CpuGroup(CpuWorldState world, int[] worldRanks, TimeSpan timeout)
    {
        World = world;
        WorldRanks = worldRanks;
        Timeout = timeout;
        _arrived = new bool[worldRanks.Length];
        _left = new bool[worldRanks.Length];
        Calls = new CpuCollectiveCall?[worldRanks.Length];
        _splitResults = new (CpuGroup, int)[worldRanks.Length];
        _splitRequests = new (int, int)[worldRanks.Length];
        world.Register(this);
    }

    /// <summary>A point-to-point message waiting for its receiver.</summary>
    internal sealed class Message(CpuTensor tensor)
    {
        public CpuTensor Tensor { get; } = tensor;

        public bool Done { get; set; }

        public string? Error { get; set; }
    }

    internal CpuWorldState World { get; }

    /// <summary>World rank of each rank of this group.</summary>
    internal int[] WorldRanks { get; }

    internal int Size => WorldRanks.Length;

    internal TimeSpan Timeout { get; }

    /// <summary>Each rank's current collective; written before the first barrier of a collective and read
    /// by every rank until the second.</summary>
    internal CpuCollectiveCall?[] Calls { get; }

    /// <summary>Waits until every rank of the group has arrived.</summary>
    internal void Barrier(int rank, string op) => Guarded(rank, () => ArriveLocked(rank, op, null));

    /// <summary>Collective split: returns this rank's new group and its rank there.</summary>
    internal (CpuGroup Group, int Rank) Split(int rank, int color, int key)
    {
        (CpuGroup, int) result = default;
        Guarded(rank, () =>
        {
            _splitRequests[rank] = (color, key);
            ArriveLocked(rank, "Split", CreateSplitGroups);
            result = _splitResults[rank];
        });
        return result;
    }

    /// <summary>Queues a message for rank <paramref name="to"/>; <see cref="WaitDelivered"/> waits for its receipt.</summary>
    internal Message Post(int from, int to, CpuTensor tensor)
    {
        var message = new Message(tensor);
        Guarded(from, () =>
        {
            ThrowIfWorldFailed(from, "Send");
            Mailbox(from, to).Enqueue(message);
            Monitor.PulseAll(_gate);
        });
        return message;
    }

    /// <summary>Waits until the receiver has copied the message; throws its mismatch error if any.</summary>
    internal void WaitDelivered(int from, int to, Message message)
    {
        Guarded(from, () => WaitLocked(from, "Send", () => message.Done, () => [to]));
        if (message.Error is { } error)
        {
            throw new ArgumentException(error);
        }
    }

    /// <summary>Receives the oldest message from rank <paramref name="from"/> into <paramref name="recv"/>.</summary>
    internal void Receive(int to, int from, CpuTensor recv)
    {
        Message? message = null;
        Guarded(to, () =>
        {
            var mailbox = Mailbox(from, to);
            WaitLocked(to, "Recv", () => mailbox.Count > 0, () => [from]);
            message = mailbox.Dequeue();
        });
        var sent = message!.Tensor;
        string? error = sent.DType != recv.DType || sent.Count != recv.Count
            ? $"Send from rank {from} has {sent.Count} {sent.DType} elements but Recv on rank {to} expects {recv.Count} {recv.DType} elements"
            : null;
        if (error is null)
        {
            Array.Copy(sent.Storage, sent.Offset, recv.Storage, recv.Offset, recv.Length);
        }
        lock (_gate)
        {
            message.Error = error;
            message.Done = true;
            Monitor.PulseAll(_gate);
        }
        if (error is not null)
        {
            throw new ArgumentException(error);
        }
    }

    /// <summary>Records that <paramref name="rank"/> disposed its communicator: calls that wait for it fail naming it.</summary>
    internal void Leave(int rank)
    {
        lock (_gate)
        {
            _left[rank] = true;
            Monitor.PulseAll(_gate);
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
            var group = new CpuGroup(World, [.. members.Select(q => WorldRanks[q])], Timeout);
            for (int i = 0; i < members.Length; i++)
            {
                _splitResults[members[i]] = (group, i);
            }
        }
    }
}
