using System.Globalization;
using System.Runtime.ExceptionServices;
using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;

namespace ModelParallel.Cli;

/// <summary>
/// <c>mp layer --tp N</c>: one transformer layer forward and backward at TP = N on the available backend (GPUs
/// when CUDA can be used, else threads on the CPU), checked two ways with the same seeded weights and input: against
/// the CPU reference in float64 at TP = 1 (correctness; skipped, saying so, when the layer is too large for it), and
/// against the same layer at TP = 1 on the same backend (consistency of the parallel split). Prints the relative
/// errors, the collectives of each phase and the time of each phase. Exits 1 when an error exceeds the tolerance of
/// the backend's dtype.
/// </summary>
public sealed class LayerVerb : IVerb
{
    private const string Help =
        "usage: mp layer --tp N [--backend auto|cpu|cuda] [--hidden H] [--heads A] [--kv-heads G] [--ffn F]\n" +
        "                [--seq S] [--batch B] [--sp] [--activation swiglu|gelu] [--norm rms|layer] [--bias]\n" +
        "                [--iterations I] [--seed N]";

    private static readonly string[] Flags = ["--sp", "--bias", "--help", "-h"];

    /// <summary>The most ranks a run starts: one thread (CPU) or one GPU each.</summary>
    private const int MaxTp = 1024;

    public string Name => "layer";

    public string Summary => "run a transformer layer at TP=N, check it against TP=1, print errors, collectives and times";

    public int Run(string[] args)
    {
        var line = CommandLine.Parse(args, Flags, laterOverrides: true);
        if (line.Has("--help") || line.Has("-h"))
        {
            Console.WriteLine(Help);
            return 0;
        }
        var options = Options.Read(line);
        var backend = Backends.Parse(options.Backend);
        Console.WriteLine($"transformer layer: {options.Config}");
        Console.WriteLine($"tokens: {options.Shape}, TP={options.Tp}{(options.SequenceParallel ? ", sequence parallel" : "")}, " +
            $"backend {backend}, {options.Iterations} timed iterations after one warm-up");
        LayerResult reference, result;
        LayerResult? cpuReference = null;
        long work = CpuReferenceWork(options);
        try
        {
            reference = Execute(backend, 1, options, DType.Float32);
            result = Execute(backend, options.Tp, options, DType.Float32);
            if (work <= CpuReferenceLimit)
            {
                cpuReference = Execute(BackendKind.Cpu, 1, options with { Iterations = 0 }, DType.Float64);
            }
        }
        catch (RankFailedException e) when (e.InnerException is ArgumentException or InvalidOperationException)
        {
            ExceptionDispatchInfo.Throw(e.InnerException);
            throw;
        }
        Console.WriteLine($"device: {result.Device}");
        double tol = result.Compute == DType.BFloat16 ? 5e-2 : 1e-4;
        double worst = 0;
        if (cpuReference is null)
        {
            Console.Error.WriteLine($"CPU float64 reference: skipped, the layer needs about {work:E1} multiply-adds (limit {CpuReferenceLimit:E0})");
        }
        else
        {
            Console.WriteLine($"relative error of TP={options.Tp} on {result.Compute} against the CPU float64 reference at TP=1 (tolerance {Format(tol)}):");
            worst = PrintErrors(result, cpuReference, worst);
        }
        Console.WriteLine($"relative error of TP={options.Tp} against TP=1 on the same backend (tolerance {Format(tol)}):");
        worst = PrintErrors(result, reference, worst);
        Console.WriteLine("collectives per layer (one forward, one backward, one gradient sync):");
        Console.WriteLine($"  forward        {result.Forward}");
        Console.WriteLine($"  backward       {result.Backward}");
        Console.WriteLine($"  gradient sync  {result.GradientSync}");
        Console.WriteLine("time per phase (median, rank 0):");
        Console.WriteLine($"  {"",-10} {"TP=1",10} {"TP=" + options.Tp,10}");
        Console.WriteLine($"  {"forward",-10} {Ms(reference.ForwardMilliseconds),10} {Ms(result.ForwardMilliseconds),10}");
        Console.WriteLine($"  {"backward",-10} {Ms(reference.BackwardMilliseconds),10} {Ms(result.BackwardMilliseconds),10}");
        bool ok = worst <= tol;
        Console.WriteLine(ok ? $"ok: largest relative error {Format(worst)}" : $"MISMATCH: largest relative error {Format(worst)} exceeds {Format(tol)}");
        return ok ? 0 : 1;
    }

    /// <summary>Multiply-adds above which the CPU float64 reference is skipped (about half a minute of CPU).</summary>
    private const long CpuReferenceLimit = 20_000_000_000;

    /// <summary>Multiply-adds of one forward and backward of the layer at TP=1: three times the forward's GEMMs and attention.</summary>
    private static long CpuReferenceWork(Options options)
    {
        var c = options.Config;
        long tokens = options.Shape.Tokens, h = c.HiddenSize, hd = c.HeadDim;
        long qkv = h * (c.AttentionHeads + 2L * c.QueryGroups) * hd, proj = c.AttentionHeads * hd * h;
        long mlp = h * c.FfnHiddenSize * (c.Activation == MlpActivation.SwiGlu ? 3L : 2L);
        long attention = 2L * options.Shape.Batch * c.AttentionHeads * options.Shape.Sequence * options.Shape.Sequence * hd;
        return 3 * (tokens * (qkv + proj + mlp) + attention);
    }

    /// <summary>Prints each output's error against <paramref name="reference"/>; the largest so far.</summary>
    private static double PrintErrors(LayerResult result, LayerResult reference, double worst)
    {
        foreach (var (what, value, expected) in Comparisons(result, reference))
        {
            double err = HostReference.RelativeError(value, expected);
            worst = double.IsNaN(err) ? double.PositiveInfinity : Math.Max(worst, err);
            Console.WriteLine($"  {what,-52} {Format(err)}");
        }
        return worst;
    }

    private static IEnumerable<(string What, double[] Value, double[] Expected)> Comparisons(LayerResult result, LayerResult reference)
    {
        yield return ("output", result.Output, reference.Output);
        yield return ("input gradient", result.InputGrad, reference.InputGrad);
        foreach (var (name, grad) in reference.Grads)
        {
            yield return ($"gradient of {name}", result.Grads[name], grad);
        }
    }

    /// <summary>Runs the layer at <paramref name="tp"/>; outputs and gradients joined full, times and collectives of rank 0.</summary>
    private static LayerResult Execute(BackendKind backend, int tp, Options options, DType cpuCompute)
    {
        var ranks = new RankResult[tp];
        ThreadWorlds.Run(backend, tp, ctx => ranks[ctx.Rank] = RunRank(ctx, options), cpuCompute);
        var first = ranks[0];
        return new LayerResult(
            first.Device,
            first.Compute,
            options.SequenceParallel ? ranks.SelectMany(r => r.Output).ToArray() : first.Output,
            options.SequenceParallel ? ranks.SelectMany(r => r.InputGrad).ToArray() : first.InputGrad,
            first.Grads, first.Forward, first.Backward, first.GradientSync, first.ForwardMilliseconds, first.BackwardMilliseconds);
    }

    private static RankResult RunRank(RankContext ctx, Options options)
    {
        var backend = ctx.Backend;
        var context = new ParallelContext(backend, ctx.World, options.SequenceParallel, options.Seed);
        using var layer = new TransformerLayer(context, "layer", options.Config);
        int tp = ctx.WorldSize, hidden = options.Config.HiddenSize, tokens = options.Shape.Tokens;
        int rows = options.SequenceParallel ? tokens / tp : tokens;
        var rng = new Random(options.Seed);
        var input = Enumerable.Range(0, tokens * hidden).Select(_ => 2 * rng.NextDouble() - 1).ToArray();
        var outputGrad = Enumerable.Range(0, tokens * hidden).Select(_ => 2 * rng.NextDouble() - 1).ToArray();
        int offset = options.SequenceParallel ? ctx.Rank * rows * hidden : 0;
        using var x = backend.Allocate(backend.Compute, (long)rows * hidden);
        backend.Upload(x, input.AsSpan(offset, rows * hidden));
        using var dy = backend.Allocate(backend.Compute, (long)rows * hidden);
        backend.Upload(dy, outputGrad.AsSpan(offset, rows * hidden));

        using var barrier = backend.Allocate(backend.StatsType, 1);
        var forwardTimes = new List<double>();
        var backwardTimes = new List<double>();
        for (int i = 0; i <= options.Iterations; i++)
        {
            // Start every rank's timed step together.
            backend.Kernels.Fill(barrier, 0);
            ctx.World.AllReduce(barrier, barrier);
            backend.Synchronize();
            double forward = backend.ElapsedMilliseconds(() => layer.Forward(x, options.Shape));
            double backward = backend.ElapsedMilliseconds(() => layer.Backward(dy));
            if (i > 0)
            {
                forwardTimes.Add(forward);
                backwardTimes.Add(backward);
            }
        }
        layer.ZeroGrad();
        context.Log.Clear();
        var output = Download(layer.Forward(x, options.Shape));
        var inputGrad = Download(layer.Backward(dy));
        layer.FinalizeGradients();
        return new RankResult(backend.Name, backend.Compute, output, inputGrad, layer.SaveGradients(),
            layer.Communication(CommunicationPhase.Forward), layer.Communication(CommunicationPhase.Backward),
            layer.Communication(CommunicationPhase.GradientSync), Median(forwardTimes), Median(backwardTimes));
    }

    private static double[] Download(Tensor t)
    {
        var values = new double[t.Count];
        t.Backend.Download(t, values);
        return values;
    }

    private static double Median(List<double> values)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    private static string Format(double value) => value.ToString("0.00E+00", CultureInfo.InvariantCulture);

    private static string Ms(double milliseconds) => milliseconds.ToString("0.000", CultureInfo.InvariantCulture) + " ms";

    private sealed record RankResult(string Device, DType Compute, double[] Output, double[] InputGrad, Dictionary<string, double[]> Grads,
        CommunicationSummary Forward, CommunicationSummary Backward, CommunicationSummary GradientSync,
        double ForwardMilliseconds, double BackwardMilliseconds);

    private sealed record LayerResult(string Device, DType Compute, double[] Output, double[] InputGrad, Dictionary<string, double[]> Grads,
        CommunicationSummary Forward, CommunicationSummary Backward, CommunicationSummary GradientSync,
        double ForwardMilliseconds, double BackwardMilliseconds);

    /// <summary>The verb's arguments.</summary>
    private sealed record Options(int Tp, string Backend, TransformerConfig Config, TokenShape Shape, bool SequenceParallel,
        int Iterations, int Seed)
    {
        public static Options Read(CommandLine line)
        {
            int? tp = line.Int("--tp", min: 1);
            string backend = line.String("--backend") ?? "auto";
            int hidden = line.Int("--hidden") ?? 512, heads = line.Int("--heads") ?? 8, kvHeads = line.Int("--kv-heads") ?? 4,
                ffn = line.Int("--ffn") ?? 2048, seq = line.Int("--seq") ?? 64, batch = line.Int("--batch") ?? 2,
                iterations = line.Int("--iterations", min: 1) ?? 5, seed = line.Int("--seed") ?? 1234;
            bool sp = line.Has("--sp"), bias = line.Has("--bias");
            var activation = line.Enum<MlpActivation>("--activation") ?? MlpActivation.SwiGlu;
            var norm = line.String("--norm") switch
            {
                null or "rms" => NormKind.RmsNorm,
                "layer" => NormKind.LayerNorm,
                var other => throw new ArgumentException($"--norm must be rms or layer (got '{other}')"),
            };
            line.RejectUnknown(option => $"unknown option '{option}'\n{Help}");
            int degree = tp ?? throw new ArgumentException($"--tp is required\n{Help}");
            if (degree > MaxTp)
            {
                throw new ArgumentException($"--tp {degree}: more than {MaxTp} ranks (one thread or GPU each) is refused");
            }
            Positive(("--hidden", hidden), ("--heads", heads), ("--kv-heads", kvHeads), ("--ffn", ffn), ("--seq", seq), ("--batch", batch));
            if (TokenShape.Problem(seq, batch) is { } tokens)
            {
                throw new ArgumentException($"--seq {seq} x --batch {batch}: {tokens}");
            }
            var config = new TransformerConfig(hidden, heads, kvHeads, ffn, activation, norm, bias);
            var shape = new TokenShape(seq, batch);
            // Every size against TP from the numbers alone, before a thread, an allocation or the TP=1 reference.
            TransformerLayer.Validate("layer", config, degree, sp, shape);
            return new Options(degree, backend, config, shape, sp, iterations, seed);
        }

        private static void Positive(params (string Option, int Value)[] values)
        {
            foreach (var (option, value) in values)
            {
                if (value <= 0)
                {
                    throw new ArgumentException($"{option} must be positive (got {value})");
                }
            }
        }
    }
}
