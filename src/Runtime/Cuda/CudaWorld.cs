using System.Diagnostics;
using System.Runtime.ExceptionServices;
using ModelParallel.Interop;
using ModelParallel.Runtime.Launch;

namespace ModelParallel.Runtime.Cuda;

/// <summary>Creates the ranks of a CUDA world: threads of one process (one GPU each), or one process per GPU
/// started by a launcher.</summary>
public static unsafe class CudaWorld
{
    /// <summary>How long ranks get to stop by themselves after another rank failed, before their communicators are
    /// aborted under them (which ends NCCL calls blocked waiting for the failed rank).</summary>
    public static readonly TimeSpan AbortGracePeriod = TimeSpan.FromSeconds(2);

    /// <summary>How long <see cref="Run"/> lets the last ranks run after the first one finished its body.</summary>
    public static readonly TimeSpan FinishTimeout = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Runs <paramref name="body"/> on <paramref name="gpus"/> threads, rank r on GPU r, each with a
    /// <see cref="CudaBackend"/> and a world communicator from ncclCommInitAll. Returns when every rank has finished
    /// and its stream is idle; the contexts are disposed by this method. When a rank throws, the others' waits are
    /// cancelled, communicators still busy are aborted, and the first failure is rethrown (its Data["rank"] names
    /// the rank). Throws <see cref="InvalidOperationException"/> when fewer than <paramref name="gpus"/> GPUs exist.
    /// </summary>
    public static void Run(int gpus, Action<RankContext> body)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(gpus);
        ArgumentNullException.ThrowIfNull(body);
        if (!CudaBackend.TryGetDeviceCount(out int count, out string reason))
        {
            throw new InvalidOperationException($"a CUDA world of {gpus} GPUs cannot run: {reason}");
        }
        if (count < gpus)
        {
            throw new InvalidOperationException($"a CUDA world of {gpus} GPUs cannot run: {count} GPUs are present");
        }
        var handles = InitAll(gpus);
        var world = new WorldRun(gpus, handles);
        var threads = new Thread[gpus];
        for (int rank = 0; rank < gpus; rank++)
        {
            int r = rank;
            threads[r] = new Thread(() => world.RankMain(r, body)) { IsBackground = true, Name = $"cuda-world rank {r}" };
            threads[r].Start();
        }
        world.Supervise();
        foreach (var thread in threads)
        {
            thread.Join();
        }
        world.ThrowFirstFailure();
    }

    /// <summary>Like <see cref="Run(int, Action{RankContext})"/>, returning what each rank's body returned, by rank.</summary>
    public static T[] Run<T>(int gpus, Func<RankContext, T> body)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(gpus);
        ArgumentNullException.ThrowIfNull(body);
        var results = new T[gpus];
        Run(gpus, context => { results[context.Rank] = body(context); });
        return results;
    }

    /// <summary>
    /// This process's rank of a world started one process per GPU by a launcher (torchrun-compatible variables:
    /// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): a backend on GPU LOCAL_RANK and a world communicator,
    /// whose NCCL unique id rank 0 shares through <see cref="Rendezvous.Broadcast"/>.
    /// </summary>
    public static RankContext FromEnvironment(TimeSpan? rendezvousTimeout = null)
    {
        var env = LaunchEnvironment.FromEnvironment();
        if (!CudaBackend.TryGetDeviceCount(out int count, out string reason))
        {
            throw new InvalidOperationException($"rank {env.Rank} cannot use CUDA: {reason}");
        }
        if (env.LocalRank >= count)
        {
            throw new InvalidOperationException(
                $"rank {env.Rank} has LOCAL_RANK {env.LocalRank} but only {count} GPUs are visible to it");
        }
        var backend = new CudaBackend(env.LocalRank);
        var handle = new NcclCommHandle();
        try
        {
            byte[]? idOnRank0 = null;
            if (env.Rank == 0)
            {
                NcclUniqueId created;
                Status.CheckNccl(Nccl.GetUniqueId(&created), "ncclGetUniqueId");
                idOnRank0 = created.ToArray();
            }
            var id = NcclUniqueId.FromBytes(Rendezvous.Broadcast(env, "nccl-unique-id", idOnRank0,
                rendezvousTimeout ?? TimeSpan.FromMinutes(5)));
            Device.MakeCurrent(env.LocalRank);
            nint comm;
            Status.CheckNccl(Nccl.CommInitRank(&comm, env.WorldSize, id, env.Rank),
                $"ncclCommInitRank(rank {env.Rank} of {env.WorldSize})");
            handle.Adopt(comm);
            return new RankContext(backend, new NcclCommunicator(backend, handle));
        }
        catch
        {
            handle.Abort();
            backend.Dispose();
            throw;
        }
    }

    private static NcclCommHandle[] InitAll(int gpus)
    {
        var comms = new nint[gpus];
        var devices = Enumerable.Range(0, gpus).ToArray();
        fixed (nint* c = comms)
        fixed (int* d = devices)
        {
            Status.CheckNccl(Nccl.CommInitAll(c, gpus, d), $"ncclCommInitAll({gpus} GPUs)");
        }
        return comms.Select(comm =>
        {
            var handle = new NcclCommHandle();
            handle.Adopt(comm);
            return handle;
        }).ToArray();
    }

    /// <summary>The shared state of one <see cref="Run"/>: failures, cancellation and the ranks' backends.</summary>
    private sealed class WorldRun(int gpus, NcclCommHandle[] handles)
    {
        private readonly object _lock = new();
        private readonly List<Exception> _failures = [];
        private readonly CancellationTokenSource _cancel = new();
        private readonly CountdownEvent _finished = new(gpus);
        private readonly CudaBackend?[] _backends = new CudaBackend?[gpus];
        private readonly Stopwatch _sinceFailure = new();
        private readonly Stopwatch _sinceFirstFinish = new();
        private readonly bool[] _done = new bool[gpus];

        private bool Failed
        {
            get
            {
                lock (_lock)
                {
                    return _failures.Count > 0;
                }
            }
        }

        public void RankMain(int rank, Action<RankContext> body)
        {
            CudaBackend? backend = null;
            RankContext? context = null;
            try
            {
                backend = new CudaBackend(rank) { WorldCancellation = _cancel.Token };
                lock (_lock)
                {
                    _backends[rank] = backend;
                }
                context = new RankContext(backend, new NcclCommunicator(backend, handles[rank]));
                body(context);
                backend.Synchronize();
            }
            catch (Exception e)
            {
                Fail(rank, e);
            }
            finally
            {
                lock (_lock)
                {
                    _done[rank] = true;
                    _sinceFirstFinish.Start();
                }
                _finished.Signal();
            }
            _finished.Wait();
            try
            {
                if (Failed)
                {
                    handles[rank].Abort();
                    foreach (var communicator in backend?.Communicators() ?? [])
                    {
                        communicator.Abort();
                    }
                }
                if (context is not null)
                {
                    context.Dispose();
                }
                else
                {
                    backend?.Dispose();
                }
                handles[rank].Dispose();
            }
            catch (Exception e)
            {
                Fail(rank, e);
            }
        }

        /// <summary>Waits for every rank to finish its body; once one failed and the grace period is over, aborts
        /// the communicators of ranks still running. Ranks still running <see cref="FinishTimeout"/> after the first
        /// one finished count as a failure (a collective some ranks never issued).</summary>
        public void Supervise()
        {
            bool aborted = false;
            while (!_finished.Wait(TimeSpan.FromMilliseconds(50)))
            {
                if (!Failed && _sinceFirstFinish.Elapsed > FinishTimeout)
                {
                    string pending;
                    lock (_lock)
                    {
                        pending = string.Join(", ", Enumerable.Range(0, gpus).Where(r => !_done[r]));
                    }
                    Fail(-1, new TimeoutException(
                        $"ranks {pending} were still running {FinishTimeout} after another rank finished; " +
                        "did every rank issue the same collectives?"));
                }
                if (!aborted && Failed && _sinceFailure.Elapsed > AbortGracePeriod)
                {
                    aborted = true;
                    CudaBackend?[] backends;
                    lock (_lock)
                    {
                        backends = [.. _backends];
                    }
                    foreach (var backend in backends)
                    {
                        foreach (var communicator in backend?.Communicators() ?? [])
                        {
                            communicator.Abort();
                        }
                    }
                    foreach (var handle in handles)
                    {
                        handle.Abort();
                    }
                }
            }
        }

        public void ThrowFirstFailure()
        {
            _cancel.Dispose();
            _finished.Dispose();
            Exception? first;
            lock (_lock)
            {
                first = _failures.FirstOrDefault(e => e is not OperationCanceledException) ?? _failures.FirstOrDefault();
            }
            if (first is not null)
            {
                ExceptionDispatchInfo.Throw(first);
            }
        }

        private void Fail(int rank, Exception e)
        {
            e.Data["rank"] = rank;
            lock (_lock)
            {
                if (_failures.Count == 0)
                {
                    _sinceFailure.Start();
                }
                _failures.Add(e);
            }
            _cancel.Cancel();
        }
    }
}
