namespace ModelParallel.Runtime.Cpu;

/// <summary>
/// What every group split from one world shares: the first rank failure, which aborts the pending and
/// later collectives of all those groups.
/// </summary>
internal sealed class CpuWorldState
{
    private readonly List<CpuGroup> _groups = [];
    private Failure? _failure;

    internal sealed record Failure(int WorldRank, string Reason);

    internal Failure? Failed => Volatile.Read(ref _failure);

    internal void Register(CpuGroup group)
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
        CpuGroup[] groups;
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
