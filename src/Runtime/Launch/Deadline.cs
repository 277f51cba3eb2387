using System.Diagnostics;

namespace ModelParallel.Runtime.Launch;

/// <summary>A point in time a timeout started counting from, and how much of it is left.</summary>
internal readonly struct Deadline
{
    private readonly long _start;

    public Deadline(TimeSpan timeout)
    {
        _start = Stopwatch.GetTimestamp();
        Timeout = timeout;
    }

    public TimeSpan Timeout { get; }

    public TimeSpan Remaining
    {
        get
        {
            var left = Timeout - Stopwatch.GetElapsedTime(_start);
            return left > TimeSpan.Zero ? left : TimeSpan.Zero;
        }
    }

    public bool Expired => Remaining == TimeSpan.Zero;

    /// <summary>The remaining time, at most <paramref name="limit"/>.</summary>
    public TimeSpan RemainingAtMost(TimeSpan limit) => Remaining < limit ? Remaining : limit;
}
