using ModelParallel.Runtime;

namespace ModelParallel.Bench;

/// <summary>Median stream time of a region after warm-up (CUDA events on CUDA).</summary>
public static class KernelTimer
{
    public static double MedianMs(IBackend backend, Action work, int warmup = 5, int iterations = 20)
    {
        for (int i = 0; i < warmup; i++)
        {
            work();
        }
        backend.Synchronize();
        var times = new double[iterations];
        for (int i = 0; i < iterations; i++)
        {
            times[i] = backend.ElapsedMilliseconds(work);
        }
        Array.Sort(times);
        return times[iterations / 2];
    }

    /// <summary>How many copies of a working set of <paramref name="bytes"/> rotate past a cache of <paramref name="l2Bytes"/> (at most 8).</summary>
    public static int RotationCopies(long bytes, long l2Bytes) => (int)Math.Clamp((3 * l2Bytes + bytes - 1) / Math.Max(1, bytes), 1, 8);
}
