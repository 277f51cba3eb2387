using System.Text;

namespace ModelParallel.Runtime.Diagnostics;

/// <summary>One measured size, in nccl-tests' form. Size counts the bytes of the larger buffer
/// (the gathered output of all-gather, the input of reduce-scatter).</summary>
public readonly record struct CollectiveRow(string Op, long Size, long Count, string Type, double TimeUs, double AlgBw, double BusBw);

/// <summary>
/// Times collectives like nccl-tests: warm-up, then each iteration timed on the rank's stream; the
/// slowest rank's time of each iteration is kept (a max all-reduce of the timings) and the median
/// reported. algbw = size / time (GB/s = 1e9 B/s); busbw = algbw * <see cref="CollectiveKindExtensions.BusFactor"/>.
/// Inputs are random, never zeros, and the result of the first iteration is checked.
/// </summary>
public static class CollectiveBenchmark
{
    /// <summary>Powers of two from <paramref name="minBytes"/> to <paramref name="maxBytes"/>.</summary>
    public static IEnumerable<long> Sizes(long minBytes, long maxBytes)
    {
        if (minBytes <= 0 || maxBytes < minBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(minBytes), $"bad size range {minBytes}..{maxBytes}");
        }
        for (long s = minBytes; s <= maxBytes; s *= 2)
        {
            yield return s;
        }
    }

    /// <summary>Runs one collective at one size on this rank; every rank of the communicator must call it.</summary>
    public static CollectiveRow Measure(RankContext ctx, ICommunicator comm, CollectiveKind kind, long bytes, DType dtype,
        int warmup, int iterations)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, 1);
        IBackend backend = ctx.Backend;
        int n = comm.Size;
        long count = Math.Max(1, bytes / dtype.Size());
        if (kind is CollectiveKind.AllGather or CollectiveKind.ReduceScatter)
        {
            count = Math.Max(n, count - count % n);
        }
        long sendCount = kind == CollectiveKind.AllGather ? count / n : count;
        long recvCount = kind == CollectiveKind.ReduceScatter ? count / n : count;
        using Tensor send = backend.Allocate(dtype, sendCount);
        using Tensor recv = backend.Allocate(dtype, recvCount);
        var host = new double[sendCount];
        var rng = new Random(unchecked(Environment.TickCount * 31 + comm.Rank));
        for (int i = 0; i < host.Length; i++)
        {
            host[i] = rng.Next(1, 8); // small integers: exact in bf16 sums of a few ranks
        }
        backend.Upload(send, host);
        void Op()
        {
            switch (kind)
            {
                case CollectiveKind.AllReduce: comm.AllReduce(send, recv); break;
                case CollectiveKind.AllGather: comm.AllGather(send, recv); break;
                case CollectiveKind.ReduceScatter: comm.ReduceScatter(send, recv); break;
                default: comm.Broadcast(send, recv, 0); break;
            }
        }

        for (int i = 0; i < Math.Max(1, warmup); i++)
        {
            Op();
        }
        backend.Synchronize();
        CheckFinite(backend, recv, kind);
        // A one-element all-reduce before each timed iteration lines the ranks' streams up (as
        // torch.distributed's barrier does), so that a rank's time is the collective's, not its wait for late peers.
        using Tensor barrier = backend.Allocate(DType.Float32, 1);
        backend.Upload(barrier, [1.0]);
        var times = new double[iterations];
        for (int i = 0; i < iterations; i++)
        {
            comm.AllReduce(barrier, barrier);
            times[i] = backend.ElapsedMilliseconds(Op) * 1000.0;
        }
        using Tensor t = backend.Allocate(DType.Float64, iterations);
        backend.Upload(t, times);
        comm.AllReduce(t, t, ReduceOp.Max);
        backend.Download(t, times);
        Array.Sort(times);
        double us = times[iterations / 2];
        long size = count * dtype.Size();
        double algbw = size / (us * 1e-6) / 1e9;
        return new CollectiveRow(kind.SnakeName(), size, count, TypeName(dtype), us, algbw, algbw * kind.BusFactor(n));
    }

    private static void CheckFinite(IBackend backend, Tensor recv, CollectiveKind kind)
    {
        int probe = (int)Math.Min(recv.Count, 4096);
        var values = new double[probe];
        using var head = recv.Slice(0, probe);
        backend.Download(head, values);
        foreach (double v in values)
        {
            if (!double.IsFinite(v) || v < 1)
            {
                throw new InvalidOperationException($"{kind.SnakeName()} produced {v}; inputs are integers in [1, 8)");
            }
        }
    }

    public static string TypeName(DType dtype) => dtype switch
    {
        DType.Float32 => "float",
        DType.Float64 => "double",
        DType.BFloat16 => "bfloat16",
        DType.Float16 => "half",
        _ => "int32",
    };

    public static string Header(string title) =>
        $"# {title}\n{"size",12} {"count",12} {"type",8} {"time(us)",10} {"algbw",8} {"busbw",8}";

    public static string Format(CollectiveRow r) =>
        $"{r.Size,12} {r.Count,12} {r.Type,8} {r.TimeUs,10:F2} {r.AlgBw,8:F2} {r.BusBw,8:F2}";

    /// <summary>The rows as a JSON array (invariant culture).</summary>
    public static string ToJson(IEnumerable<CollectiveRow> rows)
    {
        var sb = new StringBuilder("[\n");
        bool first = true;
        foreach (var r in rows)
        {
            sb.Append(first ? "" : ",\n");
            first = false;
            sb.Append(System.Globalization.CultureInfo.InvariantCulture,
                $"  {{\"op\": \"{r.Op}\", \"size\": {r.Size}, \"count\": {r.Count}, \"type\": \"{r.Type}\", \"time_us\": {r.TimeUs:R}, \"algbw\": {r.AlgBw:R}, \"busbw\": {r.BusBw:R}}}");
        }
        return sb.Append("\n]").ToString();
    }
}
