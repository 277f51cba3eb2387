namespace ModelParallel.Runtime.Cpu;

/// <summary>
/// Rank <see cref="Rank"/> failed: thrown by <see cref="CpuWorld.Run"/> (wrapping the rank's exception) and by
/// the pending or later collectives of the other ranks, which cannot complete without it.
/// </summary>
public sealed class RankFailedException : Exception
{
    public RankFailedException(int rank, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Rank = rank;
    }

    /// <summary>The rank (of the world) that failed.</summary>
    public int Rank { get; }
}
