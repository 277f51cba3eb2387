using ModelParallel.Runtime;

namespace ModelParallel.Bench;

/// <summary>Median stream time of a region after warm-up (CUDA events on CUDA).</summary>
public static class KernelTimer
{
    public static double MedianMs(IBackend backend, Action work, int warmup = 5, int iterations = 20) =>
        InterleavedMedianMs(backend, [work], warmup, iterations)[0];

    /// <summary>
    /// Median stream time of each of several regions timed in turn (one run of each per round, after warm-up), so
    /// that clock and temperature drift over the measurement falls on all of them alike: the fair way to compare
    /// kernels a few percent apart that heat the GPU differently.
    /// </summary>
    public static double[] InterleavedMedianMs(IBackend backend, Action[] works, int warmup = 5, int iterations = 20)
    {
        foreach (var work in works)
        {
            for (int i = 0; i < warmup; i++)
            {
                work();
            }
        }
        backend.Synchronize();
        var times = new double[works.Length][];
        for (int w = 0; w < works.Length; w++)
        {
            times[w] = new double[iterations];
        }
        for (int i = 0; i < iterations; i++)
        {
            for (int w = 0; w < works.Length; w++)
            {
                times[w][i] = backend.ElapsedMilliseconds(works[w]);
            }
        }
        var medians = new double[works.Length];
        for (int w = 0; w < works.Length; w++)
        {
            Array.Sort(times[w]);
            medians[w] = times[w][iterations / 2];
        }
        return medians;
    }

    /// <summary>How many copies of a working set of <paramref name="bytes"/> rotate past a cache of <paramref name="l2Bytes"/> (at most 8).</summary>
    public static int RotationCopies(long bytes, long l2Bytes) => (int)Math.Clamp((3 * l2Bytes + bytes - 1) / Math.Max(1, bytes), 1, 8);
}
