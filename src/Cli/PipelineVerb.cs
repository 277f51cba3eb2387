using System.Globalization;
using ModelParallel.Layers;
using ModelParallel.Planner;
using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Training.Pipeline;

namespace ModelParallel.Cli;

/// <summary>
/// <c>mp pipeline</c>: one training step (forward and backward) of a GPT model split over PP pipeline ranks (with TP
/// inside each), by any schedule, on the backend at hand: threads on the CPU, one GPU per rank with NCCL, or, when
/// there are fewer GPUs than ranks, every rank on GPU 0 with its own stream. Prints the schedule's simulated timeline
/// and bubble beside the closed forms, the measured timeline and bubble, the peak activation memory and P2P bytes per
/// rank, and checks the loss and every gradient against the same model on one CPU rank in float64 on the whole batch.
/// Bubble here means idle time over compute time of a rank (so 1F1B's is (p-1)/m).
/// </summary>
public sealed class PipelineVerb : IVerb
{
    private const string Help =
        "usage: mp pipeline --pipeline-model-parallel-size P [--tensor-model-parallel-size T] [--sequence-parallel]\n" +
        "                   [--pipeline-schedule gpipe|1f1b|interleaved-1f1b|zb-h1] [--micro-batch-size B] [--global-batch-size G]\n" +
        "                   [--num-layers-per-virtual-pipeline-stage L] [--pipeline-layout N0,N1,...]\n" +
        "                   [--num-layers N] [--hidden-size H] [--num-attention-heads A] [--num-query-groups K]\n" +
        "                   [--ffn-hidden-size F] [--seq-length S] [--vocab-size V] [--tie-embeddings]\n" +
        "                   [--recompute-num-layers K]\n" +
        "                   [--backend auto|cpu|cuda] [--trace FILE] [--seed N]";

    private static readonly string[] Flags = ["--sequence-parallel", "--tie-embeddings", "--help", "-h"];

    public string Name => "pipeline";

    public string Summary => "a training step split over pipeline stages by a schedule, checked against one rank; timelines and bubble";

    public int Run(string[] args)
    {
        var line = CommandLine.Parse(args, Flags, laterOverrides: true);
        if (line.Has("--help") || line.Has("-h"))
        {
            Console.WriteLine(Help);
            return 0;
        }
        var o = Options.Read(line);
        var baseSchedule = ScheduleGenerator.Create(o.Kind, o.Pp, o.MicroBatches, o.VirtualStages);
        var schedule = PipelineCommunication.Insert(baseSchedule);
        ScheduleValidator.Validate(schedule);
        var layout = o.Layout is null
            ? PipelineLayout.Even(o.Config.Layers, schedule.Stages)
            : PipelineLayout.Explicit(o.Layout, o.Config.Layers, schedule.Stages);
        var backend = Backends.Parse(o.Backend);
        var t = o.Config.Transformer;
        Console.WriteLine($"model: {o.Config.Layers} layers, hidden {t.HiddenSize}, heads {t.AttentionHeads} (query groups {t.QueryGroups}), " +
            $"ffn {t.FfnHiddenSize}, vocab {o.Config.VocabSize}{(o.Config.ShareEmbeddingsAndOutputWeights ? ", tied embeddings" : "")}");
        Console.WriteLine($"pipeline: {o.Kind.Name()}, PP={o.Pp}, virtual stages {o.VirtualStages}, layout {layout} (layers per stage), " +
            $"{o.MicroBatches} micro-batches of {o.Micro}, TP={o.Tp}{(o.SequenceParallel ? " SP" : "")}" +
            (o.Recompute > 0 ? $", the first {o.Recompute} layers of each stage recomputed" : ""));

        var costs = schedule.SplitsBackward ? StageCosts.ZeroBubblePaper : new StageCosts(1, 2, 1, 1, 0);
        var simulated = ScheduleSimulator.Simulate(schedule, costs);
        Console.WriteLine($"simulated with F = 1, B = 2 (I = W = 1), free transfers; bubble = idle time / compute time of a rank:");
        Console.WriteLine(ScheduleText.Timeline(simulated, 96));
        Console.WriteLine($"  bubble: simulated {simulated.BubbleFraction:0.###}, closed form {ClosedForm(o)}");

        var rng = new Random(o.Seed);
        var ids = Enumerable.Range(0, o.MicroBatches).Select(_ => Tokens(rng, o.Micro.Tokens, o.Config.VocabSize)).ToArray();
        var targets = Enumerable.Range(0, o.MicroBatches).Select(_ => Tokens(rng, o.Micro.Tokens, o.Config.VocabSize)).ToArray();
        var ranks = Execute(backend, o, schedule, layout, ids, targets);
        var first = ranks[0];
        Console.WriteLine($"ran on {first.Device} ({o.Tp * o.Pp} ranks{first.World})");

        var timelines = Enumerable.Range(0, o.Pp).Select(p => ranks[p * o.Tp].Step.Timeline).ToList();
        double makespan = timelines.Max(tl => tl.Count == 0 ? 0 : tl.Max(a => a.EndMs));
        Console.WriteLine("measured (times: the second step, each action synchronised so times are its own; memory: the first step's peak " +
            "above the weights, the replicas of the stages and their buffers included):");
        for (int p = 0; p < o.Pp; p++)
        {
            double compute = timelines[p].Where(a => a.Action.IsCompute).Sum(a => a.EndMs - a.StartMs);
            var r = ranks[p * o.Tp];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  rank {p}: compute {compute:0.00} ms of {makespan:0.00} ms, bubble {(makespan - compute) / compute:0.###}, " +
                $"peak activations {r.PeakActivationBytes / 1024.0:0.0} KiB (planner: {Predicted(o, layout, p, r.PeakInFlight, r.Compute) / 1024:0.0} KiB " +
                $"for {string.Join("/", r.PeakInFlight)} micro-batches in flight by chunk), " +
                $"P2P {r.Step.P2PBytes} B"));
        }
        if (o.Trace is not null)
        {
            ChromeTrace.Write(o.Trace, timelines, $"{o.Kind.Name()} PP={o.Pp}");
            Console.WriteLine($"trace: {o.Trace} (Perfetto: one process per pipeline rank, compute and communication tracks)");
        }

        var weights = ranks.SelectMany(r => r.Weights).DistinctBy(w => w.Key).ToDictionary(w => w.Key, w => w.Value);
        var reference = Reference(o, ids, targets, weights);
        double tol = first.Compute == DType.Float64 ? 1e-12 : first.Compute == DType.Float32 ? 1e-5 : 2e-2;
        double lossErr = Math.Abs(first.Step.Loss - reference.Loss) / Math.Abs(reference.Loss);
        double worst = lossErr;
        Console.WriteLine($"against one CPU rank in float64 on the whole batch (tolerance {tol:0.0E+0}):");
        Console.WriteLine($"  loss {first.Step.Loss:0.000000} vs {reference.Loss:0.000000}: relative error {lossErr:0.00E+00}");
        foreach (var (name, expected) in reference.Grads.OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var grad = ranks.Select(r => r.Grads.GetValueOrDefault(name)).FirstOrDefault(g => g is not null)
                ?? throw new InvalidOperationException($"no pipeline rank holds the gradient of {name}");
            double err = HostReference.RelativeError(grad[..expected.Length], expected);
            worst = double.IsNaN(err) ? double.PositiveInfinity : Math.Max(worst, err);
            Console.WriteLine($"  gradient of {name,-52} {err:0.00E+00}");
        }
        bool ok = worst <= tol;
        Console.WriteLine(ok ? $"ok: largest relative error {worst:0.00E+00}" : $"MISMATCH: largest relative error {worst:0.00E+00} exceeds {tol:0.0E+0}");
        return ok ? 0 : 1;
    }

    private static string ClosedForm(Options o) => o.Kind switch
    {
        ScheduleKind.Interleaved1F1B => $"(p-1)/(v m) = {(o.Pp - 1) / (double)(o.VirtualStages * o.MicroBatches):0.###}",
        ScheduleKind.ZeroBubbleH1 => $"about a third of 1F1B's (p-1)/m = {(o.Pp - 1) / (double)o.MicroBatches:0.###} when F = I = W",
        _ => $"(p-1)/m = {(o.Pp - 1) / (double)o.MicroBatches:0.###}",
    };

    /// <summary>
    /// The planner's activation bytes for pipeline rank <paramref name="rank"/> holding <paramref name="inFlight"/>
    /// micro-batches per chunk (Korthikanti et al.'s terms, <see cref="ActivationMemory"/>): each stage's layers (its
    /// recomputed ones keeping only their input, plus one recomputed layer's working set), the embedding on the first
    /// stage and the output layer on the last; float64 elements count twice fp32's.
    /// </summary>
    private static double Predicted(Options o, PipelineLayout layout, int rank, IReadOnlyList<int> inFlight, DType compute)
    {
        var t = o.Config.Transformer;
        var model = new ModelSpec
        {
            Name = "mp pipeline", Layers = o.Config.Layers, Hidden = t.HiddenSize, Heads = t.AttentionHeads, KvHeads = t.QueryGroups,
            Ffn = t.FfnHiddenSize, Activation = FfnActivation.SwiGlu, Vocab = o.Config.VocabSize, SequenceLength = o.Micro.Sequence,
            TiedEmbeddings = o.Config.ShareEmbeddingsAndOutputWeights,
        };
        var training = new TrainingSpec
        {
            GlobalBatch = o.Micro.Batch * o.MicroBatches, Precision = compute == DType.BFloat16 ? Precision.Bf16 : Precision.Fp32,
            SequenceParallel = o.SequenceParallel, Attention = AttentionKind.Flash,
        };
        double Sum(IReadOnlyList<Term> terms) => terms.Sum(x => x.Value);
        double layer = Sum(ActivationMemory.LayerWithoutRecompute(model, training, o.Tp, o.Micro.Batch));
        double checkpoint = Sum(ActivationMemory.Layer(model, training with { Recompute = Recompute.Full }, o.Tp, o.Micro.Batch));
        double total = 0;
        for (int c = 0; c < inFlight.Count; c++)
        {
            int stage = c * o.Pp + rank, layers = layout.LayerCounts[stage], recomputed = Math.Min(o.Recompute, layers);
            double perMicroBatch = (layers - recomputed) * layer + (recomputed > 0 ? checkpoint : 0)
                + (stage == 0 ? Sum(ActivationMemory.Embedding(model, training, o.Tp, o.Micro.Batch)) : 0)
                + (stage == layout.Stages - 1 ? Sum(ActivationMemory.Output(model, training, o.Tp, o.Micro.Batch)) : 0);
            total += inFlight[c] * perMicroBatch + (recomputed > 0 ? recomputed * layer : 0);
        }
        return compute == DType.Float64 ? 2 * total : total;
    }

    private static int[] Tokens(Random rng, int count, int vocab) => Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();

    /// <summary>Runs the pipeline on every rank: a warm-up step, then the measured one.</summary>
    private static RankResult[] Execute(BackendKind backend, Options o, PipelineSchedule schedule, PipelineLayout layout, int[][] ids, int[][] targets)
    {
        int ranks = o.Tp * o.Pp;
        var results = new RankResult[ranks];
        string world = "";
        void Body(RankContext ctx)
        {
            using var groups = ProcessGroups.Create(ctx.World, o.Tp, o.Pp);
            var context = new ParallelContext(ctx.Backend, groups.TensorParallel, o.SequenceParallel, o.Seed);
            using var executor = new PipelineExecutor(context, groups.PipelineParallel, o.Config, layout, schedule, o.Micro,
                synchronizeEachAction: true, recomputeLayers: o.Recompute);
            var weights = executor.Parameters.DistinctBy(p => p.Name).ToDictionary(p => p.Name, p => p.Save());
            // Memory from the first step (the stage replicas and their buffers are made during it), times from the second.
            ctx.Backend.Synchronize();
            long before = ctx.Backend.AllocatorStats.BytesInUse;
            ctx.Backend.ResetPeak();
            executor.Step(ids, targets);
            ctx.Backend.Synchronize();
            long peak = ctx.Backend.AllocatorStats.PeakBytesInUse - before;
            var step = executor.Step(ids, targets);
            results[ctx.Rank] = new RankResult(ctx.Backend.Name, ctx.Backend.Compute, step, executor.SaveGradients(), weights,
                executor.PeakInFlight, peak);
        }
        switch (backend)
        {
            case BackendKind.Cpu:
                CpuWorld.Run(ranks, DType.Float64, Body);
                break;
            case BackendKind.Cuda when ThreadWorlds.CudaDeviceCount() >= ranks:
                ThreadWorlds.Run(BackendKind.Cuda, ranks, Body);
                break;
            default:
                world = ", all on GPU 0 with a stream each: fewer GPUs than ranks";
                ThreadWorlds.RunOnOneDevice(ranks, Body);
                break;
        }
        results[0] = results[0] with { World = world };
        return results;
    }

    /// <summary>The model on one CPU rank in float64, on the micro-batches side by side, from the pipeline's weights.</summary>
    private static (double Loss, Dictionary<string, double[]> Grads) Reference(Options o, int[][] ids, int[][] targets,
        IReadOnlyDictionary<string, double[]> weights)
    {
        int m = o.MicroBatches, b = o.Micro.Batch, seq = o.Micro.Sequence;
        var shape = new TokenShape(seq, b * m);
        int[] Join(int[][] parts)
        {
            var joined = new int[shape.Tokens];
            for (int j = 0; j < m; j++)
            {
                for (int s = 0; s < seq; s++)
                {
                    for (int i = 0; i < b; i++)
                    {
                        joined[s * b * m + j * b + i] = parts[j][s * b + i];
                    }
                }
            }
            return joined;
        }
        double loss = 0;
        Dictionary<string, double[]> grads = [];
        CpuWorld.Run(1, DType.Float64, ctx =>
        {
            var context = new ParallelContext(ctx.Backend, ctx.World, seed: o.Seed);
            using var model = new GptModel(context, o.Config);
            foreach (var p in model.Parameters)
            {
                p.Load(weights[p.Name].AsSpan(0, checked((int)p.FullCount)));
            }
            using var idTensor = ctx.Backend.Allocate(DType.Int32, shape.Tokens);
            using var targetTensor = ctx.Backend.Allocate(DType.Int32, shape.Tokens);
            ctx.Backend.Upload(idTensor, Join(ids));
            ctx.Backend.Upload(targetTensor, Join(targets));
            var perToken = new double[shape.Tokens];
            ctx.Backend.Download(model.Forward(idTensor, targetTensor, shape), perToken);
            loss = perToken.Average();
            model.Backward(1.0 / shape.Tokens);
            model.FinalizeGradients();
            grads = model.SaveGradients();
        });
        return (loss, grads);
    }

    private sealed record RankResult(string Device, DType Compute, PipelineStepResult Step, Dictionary<string, double[]> Grads,
        Dictionary<string, double[]> Weights, IReadOnlyList<int> PeakInFlight, long PeakActivationBytes)
    {
        public string World { get; init; } = "";
    }

    /// <summary>The verb's arguments, Megatron's flag names.</summary>
    private sealed record Options(int Pp, int Tp, bool SequenceParallel, ScheduleKind Kind, int MicroBatches, TokenShape Micro,
        int VirtualStages, int[]? Layout, GptConfig Config, string Backend, string? Trace, int Seed, int Recompute)
    {
        public static Options Read(CommandLine line)
        {
            int pp = line.Int("--pipeline-model-parallel-size", min: 1) ?? throw new ArgumentException($"--pipeline-model-parallel-size is required\n{Help}");
            int tp = line.Int("--tensor-model-parallel-size", min: 1) ?? 1;
            bool sp = line.Has("--sequence-parallel");
            var kind = ScheduleKinds.Parse(line.String("--pipeline-schedule") ?? "1f1b");
            int micro = line.Int("--micro-batch-size", min: 1) ?? 1;
            int global = line.Int("--global-batch-size", min: 1) ?? 2 * pp * micro;
            int? perVirtual = line.Int("--num-layers-per-virtual-pipeline-stage", min: 1);
            var layout = line.IntList("--pipeline-layout")?.ToArray();
            int layers = line.Int("--num-layers", min: 1) ?? 4 * pp, hidden = line.Int("--hidden-size", min: 1) ?? 64,
                heads = line.Int("--num-attention-heads", min: 1) ?? 4, groups = line.Int("--num-query-groups", min: 1) ?? 2,
                ffn = line.Int("--ffn-hidden-size", min: 1) ?? 128, seq = line.Int("--seq-length", min: 1) ?? 16,
                vocab = line.Int("--vocab-size", min: 1) ?? 257, seed = line.Int("--seed") ?? 1234;
            bool tied = line.Has("--tie-embeddings");
            int recompute = line.Int("--recompute-num-layers", min: 0) ?? 0;
            string backend = line.String("--backend") ?? "auto";
            string? trace = line.String("--trace");
            line.RejectUnknown(option => $"unknown option '{option}'\n{Help}");
            if (global % micro != 0)
            {
                throw new ArgumentException($"--global-batch-size {global} is not a multiple of --micro-batch-size {micro}");
            }
            int v = 1;
            if (perVirtual is { } l)
            {
                if (layers % (pp * l) != 0)
                {
                    throw new ArgumentException(
                        $"--num-layers {layers} is not a multiple of pipeline size {pp} x --num-layers-per-virtual-pipeline-stage {l}");
                }
                v = layers / (pp * l);
            }
            var config = new GptConfig(vocab, layers, new TransformerConfig(hidden, heads, groups, ffn), tied);
            return new Options(pp, tp, sp, kind, global / micro, new TokenShape(seq, micro), v, layout, config, backend, trace, seed, recompute);
        }
    }
}
