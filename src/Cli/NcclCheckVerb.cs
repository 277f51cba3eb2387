using ModelParallel.Runtime;
using ModelParallel.Runtime.Cuda;

namespace ModelParallel.Cli;

/// <summary>
/// <c>mp nccl-check [--gpus N] [--count N]</c>: runs every NCCL collective (all-reduce with each reduction, all-gather,
/// reduce-scatter, broadcast, reduce, send/recv around a ring) in Float32 and BFloat16 and compares each result with
/// the one computed on the host in float64. Started by a launcher (WORLD_SIZE set) it is one rank of a world of one
/// process per GPU; otherwise it runs --gpus ranks (default: every GPU) as threads. Exits 1 on any mismatch.
/// </summary>
public sealed class NcclCheckVerb : IVerb
{
    private const int DefaultCount = 4099;
    private const string Help = "usage: mp nccl-check [--gpus N] [--count N]";

    public string Name => "nccl-check";

    public string Summary => "run every NCCL collective on the GPUs and check the results (exit 1 on a mismatch)";

    public int Run(string[] args)
    {
        var line = CommandLine.Parse(args, CommandLine.HelpFlags, laterOverrides: true);
        if (line.HelpRequested())
        {
            Console.WriteLine(Help);
            return 0;
        }
        int? gpus = line.Int("--gpus", min: 1);
        int count = line.Int("--count", min: 1) ?? DefaultCount;
        line.RejectUnknown(option => $"unknown option '{option}'; {Help}");
        if (Environment.GetEnvironmentVariable("WORLD_SIZE") is not null)
        {
            if (gpus is not null)
            {
                throw new ArgumentException("--gpus is for a run in one process; under a launcher the world is WORLD_SIZE processes");
            }
            using var context = CudaWorld.FromEnvironment();
            return Report(context.Rank, Check(context, count)) ? 0 : 1;
        }
        if (!CudaBackend.TryGetDeviceCount(out int available, out string reason))
        {
            throw new InvalidOperationException($"nccl-check needs GPUs: {reason}");
        }
        var failures = CudaWorld.Run(gpus ?? available, context => Check(context, count));
        bool ok = true;
        for (int rank = 0; rank < failures.Length; rank++)
        {
            ok &= Report(rank, failures[rank]);
        }
        return ok ? 0 : 1;
    }

    /// <summary>Runs every collective on this rank; returns a line per mismatch (empty when all agree).</summary>
    internal static List<string> Check(RankContext context, int count)
    {
        var world = context.World;
        var backend = context.Backend;
        int size = world.Size, rank = world.Rank;
        int seed = SharedSeed(context);
        var failures = new List<string>();
        foreach (var dtype in new[] { DType.Float32, DType.BFloat16 })
        {
            double tolerance = dtype == DType.Float32 ? 1e-5 : 1e-2;
            var inputs = Enumerable.Range(0, size).Select(r => Inputs(seed, r, dtype, size * count)).ToArray();
            var mine = inputs[rank];
            using var send = Upload(backend, mine, dtype);
            using var chunk = Upload(backend, mine[..count], dtype);
            using var recv = backend.Allocate(dtype, size * count);
            using var recvChunk = backend.Allocate(dtype, count);
            void Expect(string name, Tensor output, double[] expected, double limit)
            {
                var values = new double[output.Count];
                backend.Download(output, values);
                double error = HostReference.RelativeError(values, expected);
                if (!(error <= limit))
                {
                    failures.Add($"{name} of {dtype}: relative error {error:E3} exceeds {limit:E1}");
                }
            }

            foreach (var op in Enum.GetValues<ReduceOp>())
            {
                backend.Kernels.Fill(recv, double.NaN);
                world.AllReduce(send, recv, op);
                Expect($"all-reduce {op}", recv, HostReference.Reduce(inputs, op), tolerance);
            }
            backend.Kernels.Fill(recv, double.NaN);
            world.AllGather(chunk, recv);
            Expect("all-gather", recv, [.. inputs.SelectMany(x => x[..count])], 0);
            backend.Kernels.Fill(recvChunk, double.NaN);
            world.ReduceScatter(send, recvChunk, ReduceOp.Sum);
            Expect("reduce-scatter Sum", recvChunk, HostReference.Reduce(inputs, ReduceOp.Sum)[(rank * count)..((rank + 1) * count)], tolerance);
            backend.Kernels.Fill(recvChunk, double.NaN);
            world.Broadcast(chunk, recvChunk, size - 1);
            Expect($"broadcast from rank {size - 1}", recvChunk, inputs[size - 1][..count], 0);
            backend.Kernels.Fill(recv, double.NaN);
            world.Reduce(send, recv, ReduceOp.Sum, 0);
            if (rank == 0)
            {
                Expect("reduce Sum to rank 0", recv, HostReference.Reduce(inputs, ReduceOp.Sum), tolerance);
            }
            if (size > 1)
            {
                int next = (rank + 1) % size, previous = (rank + size - 1) % size;
                backend.Kernels.Fill(recvChunk, double.NaN);
                world.SendRecv(chunk, next, recvChunk, previous);
                Expect("send-recv ring", recvChunk, inputs[previous][..count], 0);
            }
        }
        return failures;
    }

    private static bool Report(int rank, List<string> failures)
    {
        foreach (string failure in failures)
        {
            Console.WriteLine($"nccl-check rank {rank}: MISMATCH {failure}");
        }
        Console.WriteLine(failures.Count == 0 ? $"nccl-check rank {rank}: every collective ok" : $"nccl-check rank {rank}: FAILED");
        return failures.Count == 0;
    }

    /// <summary>A seed chosen by rank 0 and broadcast, so that every rank can compute every rank's inputs.</summary>
    private static int SharedSeed(RankContext context)
    {
        using var seed = context.Backend.Allocate(DType.Int32, 1);
        context.Backend.Upload(seed, [context.Rank == 0 ? Random.Shared.Next() : 0]);
        context.World.Broadcast(seed, seed, 0);
        var value = new int[1];
        context.Backend.Download(seed, value);
        return value[0];
    }

    private static double[] Inputs(int seed, int rank, DType dtype, int count)
    {
        var rng = new Random(unchecked((seed * 31 + rank) * 31 + (int)dtype)); // the same in every process (HashCode is salted per process)
        return [.. Enumerable.Range(0, count).Select(_ =>
        {
            double value = 2 * rng.NextDouble() - 1;
            return dtype == DType.BFloat16 ? (float)(BFloat16)(float)value : (float)value;
        })];
    }

    private static Tensor Upload(IBackend backend, double[] values, DType dtype)
    {
        var tensor = backend.Allocate(dtype, values.Length);
        backend.Upload(tensor, values);
        return tensor;
    }
}
