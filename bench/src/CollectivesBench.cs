using ModelParallel.Runtime;
using ModelParallel.Runtime.Diagnostics;

namespace ModelParallel.Bench;

/// <summary>
/// <c>mpbench collectives [--backend auto|cuda|cpu] [--ranks N] [--ops all_reduce,...] [--min-bytes 8]
/// [--max-bytes 1G] [--dtype float|bfloat16] [--warmup 5] [--iters 20] [--json PATH]</c>:
/// nccl-tests' table for each collective, one rank per GPU (threads of this process).
/// </summary>
public static class CollectivesBench
{
    public static int Run(Options o)
    {
        var kind = Backends.Parse(o.String("backend", "auto"));
        int ranks = o.Int("ranks", kind == BackendKind.Cuda ? ThreadWorlds.CudaDeviceCount() : 4);
        var ops = o.String("ops", "all_reduce,all_gather,reduce_scatter,broadcast").Split(',').Select(CollectiveKindExtensions.Parse).ToList();
        long minBytes = o.Long("min-bytes", 8), maxBytes = o.Long("max-bytes", 1L << 30);
        DType dtype = o.String("dtype", "float") switch
        {
            "float" => DType.Float32,
            "bfloat16" => DType.BFloat16,
            var s => throw new ArgumentException($"--dtype '{s}': use float or bfloat16"),
        };
        int warmup = o.Int("warmup", 5), iters = o.Int("iters", 20);
        string? json = o.String("json");
        o.RejectUnknown();
        if (ranks < 2)
        {
            throw new ArgumentException($"--ranks {ranks}: collectives need at least 2 ranks");
        }
        var rows = new List<CollectiveRow>();
        string device = "";
        ThreadWorlds.Run(kind, ranks, ctx =>
        {
            if (ctx.Rank == 0)
            {
                device = ctx.Backend.Name;
            }
            foreach (var op in ops)
            {
                if (ctx.Rank == 0)
                {
                    Console.WriteLine(CollectiveBenchmark.Header($"ModelParallel {op.SnakeName()}, {ranks} ranks on {ctx.Backend.Name}, {CollectiveBenchmark.TypeName(dtype)}"));
                }
                foreach (long size in CollectiveBenchmark.Sizes(minBytes, maxBytes))
                {
                    int n = size >= 256L << 20 ? Math.Max(20, iters / 2) : iters;
                    var row = CollectiveBenchmark.Measure(ctx, ctx.World, op, size, dtype, warmup, n);
                    if (ctx.Rank == 0)
                    {
                        rows.Add(row);
                        Console.WriteLine(CollectiveBenchmark.Format(row));
                    }
                }
            }
        });
        if (json is not null)
        {
            File.WriteAllText(json, $"{{\"implementation\": \"ModelParallel\", \"gpus\": {ranks}, \"device\": \"{device}\", \"rows\": {CollectiveBenchmark.ToJson(rows)}}}\n");
        }
        return 0;
    }
}
