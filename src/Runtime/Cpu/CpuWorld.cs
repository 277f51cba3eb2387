namespace ModelParallel.Runtime.Cpu;

/// <summary>Runs a body once per rank, each rank on its own thread with its own <see cref="CpuBackend"/> and
/// world <see cref="CpuCommunicator"/>.</summary>
public static class CpuWorld
{
    /// <summary>
    /// Runs <paramref name="body"/> on <paramref name="worldSize"/> threads and waits for all. When a rank throws,
    /// the others' collectives abort; after every rank has stopped, the first failure is rethrown as a
    /// <see cref="RankFailedException"/> naming its rank (a rank's own exception is preferred over the aborts it caused).
    /// </summary>
    /// <param name="collectiveTimeout">How long a collective waits for the other ranks
    /// (default <see cref="CpuCommunicator.DefaultTimeout"/>).</param>
    public static void Run(int worldSize, DType compute, Action<RankContext> body, TimeSpan? collectiveTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        Run<bool>(worldSize, compute, ctx =>
        {
            body(ctx);
            return true;
        }, collectiveTimeout);
    }

    /// <summary>As <see cref="Run(int, DType, Action{RankContext}, TimeSpan?)"/>, returning each rank's result in rank order.</summary>
    public static T[] Run<T>(int worldSize, DType compute, Func<RankContext, T> body, TimeSpan? collectiveTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (worldSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(worldSize), worldSize, "world size must be at least 1");
        }
        CpuBackend.ValidateCompute(compute);
        var timeout = collectiveTimeout ?? CpuCommunicator.DefaultTimeout;
        if (timeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(collectiveTimeout), timeout, "timeout must be positive");
        }

        var worldState = new CpuWorldState();
        var group = new CpuGroup(worldState, [.. Enumerable.Range(0, worldSize)], timeout);
        var results = new T[worldSize];
        var failures = new List<(int Rank, Exception Error)>();
        var threads = new Thread[worldSize];
        for (int rank = 0; rank < worldSize; rank++)
        {
            int r = rank;
            threads[r] = new Thread(() =>
            {
                var backend = new CpuBackend(compute);
                using var ctx = new RankContext(backend, new CpuCommunicator(group, r, backend));
                try
                {
                    results[r] = body(ctx);
                }
                catch (Exception ex)
                {
                    lock (failures)
                    {
                        failures.Add((r, ex));
                    }
                    worldState.Fail(r, $"rank {r} failed with {ex.GetType().Name}: {ex.Message}");
                }
            })
            {
                IsBackground = true,
                Name = $"rank {r}",
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
