using ModelParallel.Runtime.Cpu;

namespace ModelParallel.Runtime.Cuda;

/// <summary>
/// Several ranks on ONE GPU: threads of this process, each with its own <see cref="CudaBackend"/> on device 0 (its own
/// stream, caching allocator and cuBLASLt handle) and a <see cref="SameDeviceCommunicator"/> that exchanges by
/// device-to-device copies ordered with CUDA events. It runs the pipeline- and tensor-parallel code paths with real
/// streams and events on a machine with one GPU; it measures nothing about interconnects.
/// </summary>
public static class SameDeviceWorld
{
    /// <summary>The device every rank runs on.</summary>
    public const int Gpu = 0;

    /// <summary>
    /// Runs <paramref name="body"/> on <paramref name="ranks"/> threads sharing GPU 0 and waits for all; each rank's
    /// stream is waited for before its context is disposed (so that an asynchronous CUDA error fails that rank). When a
    /// rank throws, the others' pending and later communicator calls throw <see cref="RankFailedException"/>; after
    /// every rank has stopped, the first failure is rethrown as a <see cref="RankFailedException"/> naming its rank (a
    /// rank's own exception is preferred over the aborts it caused). Throws <see cref="InvalidOperationException"/>,
    /// saying why, when no GPU can be used.
    /// </summary>
    /// <param name="collectiveTimeout">How long a call waits on the host for the other ranks
    /// (default <see cref="CpuCommunicator.DefaultTimeout"/>); past it the world fails.</param>
    public static void Run(int ranks, Action<RankContext> body, TimeSpan? collectiveTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        Run<bool>(ranks, ctx =>
        {
            body(ctx);
            return true;
        }, collectiveTimeout);
    }

    /// <summary>As <see cref="Run(int, Action{RankContext}, TimeSpan?)"/>, returning each rank's result in rank order.</summary>
    public static T[] Run<T>(int ranks, Func<RankContext, T> body, TimeSpan? collectiveTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ranks);
        var timeout = collectiveTimeout ?? CpuCommunicator.DefaultTimeout;
        if (timeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(collectiveTimeout), timeout, "timeout must be positive");
        }
        if (!CudaBackend.TryGetDeviceCount(out _, out string reason))
        {
            throw new InvalidOperationException($"a same-device world of {ranks} ranks needs a GPU, and none can be used: {reason}");
        }

        var worldState = new SameDeviceWorldState();
        var group = new SameDeviceGroup(worldState, [.. Enumerable.Range(0, ranks)], timeout);
        var results = new T[ranks];
        var failures = new List<(int Rank, Exception Error)>();
        void Fail(int rank, Exception error)
        {
            lock (failures)
            {
                failures.Add((rank, error));
            }
            worldState.Fail(rank, $"rank {rank} failed with {error.GetType().Name}: {error.Message}");
        }

        var threads = new Thread[ranks];
        for (int rank = 0; rank < ranks; rank++)
        {
            int r = rank;
            threads[r] = new Thread(() =>
            {
                CudaBackend? backend = null;
                RankContext? ctx = null;
                try
                {
                    backend = new CudaBackend(Gpu);
                    ctx = new RankContext(backend, new SameDeviceCommunicator(group, r, backend));
                    results[r] = body(ctx);
                    backend.Synchronize();
                }
                catch (Exception ex)
                {
                    Fail(r, ex);
                }
                finally
                {
                    try
                    {
                        if (ctx is not null)
                        {
                            ctx.Dispose();
                        }
                        else
                        {
                            group.Leave(r);
                            backend?.Dispose();
                        }
                    }
                    catch (Exception ex)
                    {
                        Fail(r, ex);
                    }
                }
            })
            {
                IsBackground = true,
                Name = $"same-device rank {r}",
            };
        }
        foreach (var thread in threads)
        {
            thread.Start();
        }
        foreach (var thread in threads)
        {
            thread.Join();
        }
        if (failures.Count > 0)
        {
            var (rank, error) = failures.FirstOrDefault(f => f.Error is not RankFailedException, failures[0]);
            throw new RankFailedException(rank, $"rank {rank} failed with {error.GetType().Name}: {error.Message}", error);
        }
        return results;
    }
}
