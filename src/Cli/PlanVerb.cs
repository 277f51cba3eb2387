using ModelParallel.Planner;

namespace ModelParallel.Cli;

/// <summary>
/// <c>mp plan</c>: searches TP, PP, DP, micro batch and virtual stages for a model on a cluster and prints
/// the best layouts with their math; <c>mp plan memory</c>: the ZeRO model-state table for a parameter count.
/// </summary>
public sealed class PlanVerb : IVerb
{
    private const string Help = """
        usage: mp plan [MODEL] [CLUSTER] [TRAINING] [LAYOUT] [--top N] [--json]
               mp plan memory --params N --dp N [--precision P] [--optimizer O] [--fp32-grads] [--json]
        model:    --model NAME (gpt3-175b, llama2-7b, llama2-13b, llama2-70b, llama3-8b, llama3-70b, llama3-405b)
                  or --layers N --hidden N --heads N --ffn N --vocab N --seq N; these also override a preset
                  [--kv-heads N] [--activation gelu|swiglu] [--norm rms|layer] [--biases] [--tied-embeddings]
                  [--learned-positions] [--dropout]
        cluster:  --cluster NAME (h100x8, h200x8, a100x8) [--nodes N], or --gpus-per-node N --nodes N
                  --gpu-memory-gb X --peak-tflops X --intra-bw-gbs X --inter-bw-gbs X (GB = 1e9 B; per GPU, per direction)
        training: --global-batch N (sequences) [--precision bf16|fp16|fp32] [--fp32-grads] [--optimizer adam|sgd] [--zero 0-3]
                  [--sequence-parallel] [--recompute none|selective|full] [--attention flash|materialized]
                  [--efficiency X (0.5)] [--comm-efficiency X (0.8)] [--reserve X (0.1 of GPU memory)]
        layout:   fix any of --tp N --pp N --dp N --micro-batch N --virtual-stages N --layer-split N,N,...
        """;

    private static readonly HashSet<string> Flags =
        ["--biases", "--tied-embeddings", "--learned-positions", "--dropout", "--sequence-parallel", "--fp32-grads", "--json", "--help", "-h"];

    public string Name => "plan";

    public string Summary => "choose TP, PP and DP for a model on a cluster, showing the memory, communication and bubble math";

    public int Run(string[] args) => Run(args, Console.Out);

    /// <summary>Runs the verb writing to <paramref name="output"/>: 0 when a plan fits, 1 when none does.</summary>
    public int Run(string[] args, TextWriter output)
    {
        var memory = args.Length > 0 && args[0] == "memory";
        var options = CommandLine.Parse(memory ? args[1..] : args, Flags, laterOverrides: false);
        if (options.Has("--help") || options.Has("-h"))
        {
            output.WriteLine(Help);
            return 0;
        }
        return memory ? RunMemory(options, output) : RunSearch(options, output);
    }

    private static int RunMemory(CommandLine o, TextWriter output)
    {
        var table = ZeroTable.Compute(o.Double("--params") ?? throw Missing("--params"), o.Int("--dp") ?? throw Missing("--dp"),
            o.Enum<Precision>("--precision") ?? Precision.Bf16, o.Enum<OptimizerKind>("--optimizer") ?? OptimizerKind.Adam, o.Has("--fp32-grads"));
        var json = o.Has("--json");
        o.RejectUnknown(Unknown);
        output.Write(json ? PlanJson.Serialize(table) + Environment.NewLine : PlanText.Format(table));
        return 0;
    }

    private static int RunSearch(CommandLine o, TextWriter output)
    {
        var inputs = new PlannerInputs(ReadModel(o), ReadCluster(o), ReadTraining(o));
        var constraints = new SearchConstraints(o.Int("--tp"), o.Int("--pp"), o.Int("--dp"),
            o.Int("--micro-batch"), o.Int("--virtual-stages"), o.IntList("--layer-split"));
        var top = o.Int("--top", min: 1) ?? 5;
        var json = o.Has("--json");
        o.RejectUnknown(Unknown);
        var result = Search.Run(inputs, constraints);
        output.Write(json ? PlanJson.Serialize(PlanReport.From(result, top)) + Environment.NewLine : PlanText.Format(result, top));
        return result.Best is null ? 1 : 0;
    }

    private static ModelSpec ReadModel(CommandLine o)
    {
        var preset = o.String("--model") is { } name ? ModelPresets.Get(name) : null;
        var heads = o.Int("--heads") ?? preset?.Heads ?? throw Missing("--heads");
        return new ModelSpec
        {
            Name = preset?.Name ?? "custom",
            Layers = o.Int("--layers") ?? preset?.Layers ?? throw Missing("--layers"),
            Hidden = o.Int("--hidden") ?? preset?.Hidden ?? throw Missing("--hidden"),
            Heads = heads,
            KvHeads = o.Int("--kv-heads") ?? preset?.KvHeads ?? heads,
            Ffn = o.Int("--ffn") ?? preset?.Ffn ?? throw Missing("--ffn"),
            Activation = o.Enum<FfnActivation>("--activation") ?? preset?.Activation ?? FfnActivation.SwiGlu,
            Vocab = o.Int("--vocab") ?? preset?.Vocab ?? throw Missing("--vocab"),
            SequenceLength = o.Int("--seq") ?? preset?.SequenceLength ?? throw Missing("--seq"),
            Norm = o.String("--norm") switch
            {
                null => preset?.Norm ?? Normalization.RmsNorm,
                "rms" => Normalization.RmsNorm,
                "layer" => Normalization.LayerNorm,
                var other => throw new ArgumentException($"--norm must be rms or layer (got '{other}')"),
            },
            LinearBiases = o.Has("--biases") || (preset?.LinearBiases ?? false),
            TiedEmbeddings = o.Has("--tied-embeddings") || (preset?.TiedEmbeddings ?? false),
            LearnedPositions = o.Has("--learned-positions") || (preset?.LearnedPositions ?? false),
            Dropout = o.Has("--dropout") || (preset?.Dropout ?? false),
        };
    }

    private static ClusterSpec ReadCluster(CommandLine o)
    {
        var nodes = o.Int("--nodes") ?? 1;
        var preset = o.String("--cluster") is { } name ? ClusterPresets.Get(name, nodes) : null;
        var gpusPerNode = o.Int("--gpus-per-node") ?? preset?.GpusPerNode ?? throw Missing("--gpus-per-node");
        if (nodes > 0 && gpusPerNode > 0 && (long)nodes * gpusPerNode > ClusterSpec.MaxGpus)
        {
            throw new ArgumentException($"--nodes {nodes} x {(preset is null ? "--gpus-per-node " : $"{preset.Name}'s ")}{gpusPerNode} GPUs per node = " +
                $"{(long)nodes * gpusPerNode} GPUs, more than the {ClusterSpec.MaxGpus} the planner plans for");
        }
        return new ClusterSpec
        {
            Name = preset?.Name ?? "custom",
            Nodes = nodes,
            GpusPerNode = gpusPerNode,
            GpuMemoryBytes = o.Double("--gpu-memory-gb") * Units.GB ?? preset?.GpuMemoryBytes ?? throw Missing("--gpu-memory-gb"),
            PeakFlops = o.Double("--peak-tflops") * 1e12 ?? preset?.PeakFlops ?? throw Missing("--peak-tflops"),
            IntraNodeBandwidth = o.Double("--intra-bw-gbs") * 1e9 ?? preset?.IntraNodeBandwidth ?? throw Missing("--intra-bw-gbs"),
            InterNodeBandwidth = o.Double("--inter-bw-gbs") * 1e9 ?? preset?.InterNodeBandwidth ?? throw Missing("--inter-bw-gbs"),
        };
    }

    private static TrainingSpec ReadTraining(CommandLine o)
    {
        var defaults = new TrainingSpec { GlobalBatch = o.Int("--global-batch") ?? throw Missing("--global-batch") };
        return defaults with
        {
            Precision = o.Enum<Precision>("--precision") ?? defaults.Precision,
            Fp32Gradients = o.Has("--fp32-grads"),
            Optimizer = o.Enum<OptimizerKind>("--optimizer") ?? defaults.Optimizer,
            ZeroStage = o.Int("--zero") ?? defaults.ZeroStage,
            SequenceParallel = o.Has("--sequence-parallel"),
            Recompute = o.Enum<Recompute>("--recompute") ?? defaults.Recompute,
            Attention = o.Enum<AttentionKind>("--attention") ?? defaults.Attention,
            ComputeEfficiency = o.Double("--efficiency") ?? defaults.ComputeEfficiency,
            CommunicationEfficiency = o.Double("--comm-efficiency") ?? defaults.CommunicationEfficiency,
            MemoryReserveFraction = o.Double("--reserve") ?? defaults.MemoryReserveFraction,
        };
    }

    private static ArgumentException Missing(string name) => new($"missing {name} (mp plan --help lists the options)");

    private static string Unknown(string name) => $"unknown option {name} (mp plan --help lists them)";
}
