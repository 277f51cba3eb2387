using System.Diagnostics;
using ModelParallel.Runtime;

namespace ModelParallel.Bench;

/// <summary>
/// Stream time of one run of a region, measured as a kernel runs in a loop: after warm-up, blocks of back-to-back runs
/// timed with CUDA events (on CUDA), the median block divided by its runs.
/// </summary>
public static class KernelTimer
{
    /// <summary>Wall time the warm-up lasts at least: long enough for a GPU running large GEMMs to settle at the
    /// clocks its power limit allows (H200: from 1980 MHz down to about 1500 MHz within the first 250 ms).</summary>
    public const double WarmupSeconds = 0.5;

    /// <summary>The length a timed block aims at: long enough that the GPU's power management answers to the region
    /// itself rather than to what ran before it, and that launch gaps do not count.</summary>
    public const double BlockMs = 10;

    /// <summary>The most runs in one block (for regions of a few microseconds).</summary>
    public const int MaxRunsPerBlock = 1000;

    public static double MedianMs(IBackend backend, Action work, int blocks = 20) =>
        InterleavedMedianMs(backend, [work], blocks)[0];

    /// <summary>
    /// Median time of one run of each of several regions, timed in turn block by block so that the drift of clocks
    /// and temperature over the measurement falls on all regions alike. Warm-up runs the regions once each per round
    /// for at least three rounds and <see cref="WarmupSeconds"/>; the fastest warm-up run of a region sets how many
    /// runs its blocks hold (about <see cref="BlockMs"/>).
    /// </summary>
    public static double[] InterleavedMedianMs(IBackend backend, Action[] works, int blocks = 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blocks, 1);
        var fastest = new double[works.Length];
        Array.Fill(fastest, double.PositiveInfinity);
        var clock = Stopwatch.StartNew();
        for (int round = 0; round < 3 || clock.Elapsed.TotalSeconds < WarmupSeconds; round++)
        {
            for (int w = 0; w < works.Length; w++)
            {
                fastest[w] = Math.Min(fastest[w], backend.ElapsedMilliseconds(works[w]));
            }
        }
        var runs = new int[works.Length];
        var times = new double[works.Length][];
        for (int w = 0; w < works.Length; w++)
        {
            runs[w] = (int)Math.Clamp(Math.Ceiling(BlockMs / Math.Max(fastest[w], 1e-4)), 1, MaxRunsPerBlock);
            times[w] = new double[blocks];
        }
        for (int i = 0; i < blocks; i++)
        {
            for (int w = 0; w < works.Length; w++)
            {
                Action work = works[w];
                int count = runs[w];
                times[w][i] = backend.ElapsedMilliseconds(() =>
                {
                    for (int r = 0; r < count; r++)
                    {
                        work();
                    }
                }) / count;
            }
        }
        var medians = new double[works.Length];
        for (int w = 0; w < works.Length; w++)
        {
            Array.Sort(times[w]);
            medians[w] = times[w][blocks / 2];
        }
        return medians;
    }

    /// <summary>How many copies of a working set of <paramref name="bytes"/> rotate past a cache of <paramref name="l2Bytes"/> (at most 8).</summary>
    public static int RotationCopies(long bytes, long l2Bytes) => (int)Math.Clamp((3 * l2Bytes + bytes - 1) / Math.Max(1, bytes), 1, 8);
}
