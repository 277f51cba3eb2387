using ModelParallel.Runtime;
using ModelParallel.Runtime.Cuda;
using ModelParallel.Runtime.Diagnostics;

namespace ModelParallel.Cli;

/// <summary>
/// <c>mp info [--backend auto|cuda|cpu] [--max-bytes N]</c>: the CUDA stack's versions, each device, the
/// peer matrix, then a short all-reduce benchmark on whatever is present (all GPUs through NCCL, or the CPU
/// backend with 4 ranks when there is no GPU). Asking for <c>--backend cuda</c> where CUDA cannot be used is a failed
/// run (exit 1, one line on stderr saying why), never a silent fall-back to the CPU.
/// </summary>
public sealed class InfoVerb : IVerb
{
    private const string Help = "usage: mp info [--backend auto|cuda|cpu] [--max-bytes N]";

    public string Name => "info";

    public string Summary => "CUDA, cuBLASLt and NCCL versions, devices, peer matrix, and a short all-reduce benchmark";

    public int Run(string[] args)
    {
        var line = CommandLine.Parse(args, CommandLine.HelpFlags, laterOverrides: true);
        if (line.HelpRequested())
        {
            Console.WriteLine(Help);
            return 0;
        }
        string backendName = line.String("--backend") ?? "auto";
        long? maxBytes = line.Long("--max-bytes", min: 8);
        line.RejectUnknown(option => $"unknown option '{option}' (--backend, --max-bytes)");
        var kind = Backends.Parse(backendName);
        if (kind == BackendKind.Cuda && !CudaBackend.TryGetDeviceCount(out _, out string unusable))
        {
            Console.Error.WriteLine($"mp info: CUDA cannot be used: {OneLine(unusable)}");
            return 1;
        }
        Console.WriteLine($"ModelParallel {typeof(InfoVerb).Assembly.GetName().Version} on .NET {Environment.Version}, {Environment.ProcessorCount} CPUs");
        int gpus = PrintCuda();
        int ranks = kind == BackendKind.Cuda ? gpus : 4;
        if (kind == BackendKind.Cuda && gpus < 2)
        {
            Console.Error.WriteLine($"all-reduce: {gpus} GPU present; a collective needs at least 2 (run with --backend cpu for the CPU backend)");
            return 0;
        }
        long max = maxBytes ?? (kind == BackendKind.Cuda ? 64L << 20 : 1L << 20);
        ThreadWorlds.Run(kind, ranks, ctx =>
        {
            if (ctx.Rank == 0)
            {
                Console.WriteLine(CollectiveBenchmark.Header($"all_reduce, {ranks} ranks on {ctx.Backend.Name} ({kind} backend), float"));
            }
            foreach (long size in CollectiveBenchmark.Sizes(8, max))
            {
                var row = CollectiveBenchmark.Measure(ctx, ctx.World, CollectiveKind.AllReduce, size, DType.Float32, warmup: 3, iterations: 20);
                if (ctx.Rank == 0)
                {
                    Console.WriteLine(CollectiveBenchmark.Format(row));
                }
            }
        });
        return 0;
    }

    /// <summary>The first line of a multi-line reason (without its list of paths tried) and its last line, the advice.</summary>
    internal static string OneLine(string reason)
    {
        var lines = reason.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length <= 1 ? reason.Trim()
            : $"{lines[0].Replace(" Tried:", "", StringComparison.Ordinal).TrimEnd('.')} ({lines[^1].TrimEnd('.')})";
    }

    /// <summary>Prints versions, devices and the peer matrix; returns the number of GPUs (0 when CUDA is unusable).</summary>
    private static int PrintCuda()
    {
        if (!CudaBackend.TryGetDeviceCount(out int count, out string reason))
        {
            Console.Error.WriteLine($"CUDA: not available ({reason}); using the CPU backend");
            return 0;
        }
        Console.WriteLine($"CUDA: {CudaLibraryVersions.Query()}");
        for (int d = 0; d < count; d++)
        {
            Console.WriteLine($"  {Device.GetProperties(d)}");
        }
        if (count > 1)
        {
            bool[,] peers = Device.PeerAccessMatrix();
            Console.WriteLine("peer access (row can read column):");
            Console.WriteLine("      " + string.Concat(Enumerable.Range(0, count).Select(j => $"{j,4}")));
            for (int i = 0; i < count; i++)
            {
                Console.WriteLine($"  {i,4}" + string.Concat(Enumerable.Range(0, count).Select(j => i == j ? "   -" : peers[i, j] ? "   Y" : "   n")));
            }
        }
        return count;
    }
}
