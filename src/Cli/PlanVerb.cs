using System.Globalization;
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
        var options = Options.Parse(memory ? args[1..] : args);
        if (options.Has("--help") || options.Has("-h"))
        {
            output.WriteLine(Help);
            return 0;
        }
        return memory ? RunMemory(options, output) : RunSearch(options, output);
    }

    private static int RunMemory(Options o, TextWriter output)
    {
        var table = ZeroTable.Compute(o.Double("--params"), o.Int("--dp"),
            o.Enum("--precision", Precision.Bf16), o.Enum("--optimizer", OptimizerKind.Adam), o.Has("--fp32-grads"));
        var json = o.Has("--json");
        o.RejectUnused();
        output.Write(json ? PlanJson.Serialize(table) + Environment.NewLine : PlanText.Format(table));
        return 0;
    }

    private static int RunSearch(Options o, TextWriter output)
    {
        var inputs = new PlannerInputs(ReadModel(o), ReadCluster(o), ReadTraining(o));
        var constraints = new SearchConstraints(o.IntOrNull("--tp"), o.IntOrNull("--pp"), o.IntOrNull("--dp"),
            o.IntOrNull("--micro-batch"), o.IntOrNull("--virtual-stages"), o.IntListOrNull("--layer-split"));
        var top = o.IntOrNull("--top") ?? 5;
        if (top <= 0)
        {
            throw new ArgumentException($"--top must be positive (got {top})");
        }
        var json = o.Has("--json");
        o.RejectUnused();
        var result = Search.Run(inputs, constraints);
        output.Write(json ? PlanJson.Serialize(PlanReport.From(result, top)) + Environment.NewLine : PlanText.Format(result, top));
        return result.Best is null ? 1 : 0;
    }

    private static ModelSpec ReadModel(Options o)
    {
        var preset = o.StringOrNull("--model") is { } name ? ModelPresets.Get(name) : null;
        var heads = o.IntOrNull("--heads") ?? preset?.Heads ?? o.Int("--heads");
        return new ModelSpec
        {
            Name = preset?.Name ?? "custom",
            Layers = o.IntOrNull("--layers") ?? preset?.Layers ?? o.Int("--layers"),
            Hidden = o.IntOrNull("--hidden") ?? preset?.Hidden ?? o.Int("--hidden"),
            Heads = heads,
            KvHeads = o.IntOrNull("--kv-heads") ?? preset?.KvHeads ?? heads,
            Ffn = o.IntOrNull("--ffn") ?? preset?.Ffn ?? o.Int("--ffn"),
            Activation = o.Enum("--activation", preset?.Activation ?? FfnActivation.SwiGlu),
            Vocab = o.IntOrNull("--vocab") ?? preset?.Vocab ?? o.Int("--vocab"),
            SequenceLength = o.IntOrNull("--seq") ?? preset?.SequenceLength ?? o.Int("--seq"),
            Norm = o.StringOrNull("--norm") switch
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

    private static ClusterSpec ReadCluster(Options o)
    {
        var nodes = o.IntOrNull("--nodes") ?? 1;
        var preset = o.StringOrNull("--cluster") is { } name ? ClusterPresets.Get(name, nodes) : null;
        return new ClusterSpec
        {
            Name = preset?.Name ?? "custom",
            Nodes = nodes,
            GpusPerNode = o.IntOrNull("--gpus-per-node") ?? preset?.GpusPerNode ?? o.Int("--gpus-per-node"),
            GpuMemoryBytes = o.DoubleOrNull("--gpu-memory-gb") * Units.GB ?? preset?.GpuMemoryBytes ?? o.Double("--gpu-memory-gb") * Units.GB,
            PeakFlops = o.DoubleOrNull("--peak-tflops") * 1e12 ?? preset?.PeakFlops ?? o.Double("--peak-tflops") * 1e12,
            IntraNodeBandwidth = o.DoubleOrNull("--intra-bw-gbs") * 1e9 ?? preset?.IntraNodeBandwidth ?? o.Double("--intra-bw-gbs") * 1e9,
            InterNodeBandwidth = o.DoubleOrNull("--inter-bw-gbs") * 1e9 ?? preset?.InterNodeBandwidth ?? o.Double("--inter-bw-gbs") * 1e9,
        };
    }

    private static TrainingSpec ReadTraining(Options o)
    {
        var defaults = new TrainingSpec { GlobalBatch = o.Int("--global-batch") };
        return defaults with
        {
            Precision = o.Enum("--precision", defaults.Precision),
            Fp32Gradients = o.Has("--fp32-grads"),
            Optimizer = o.Enum("--optimizer", defaults.Optimizer),
            ZeroStage = o.IntOrNull("--zero") ?? defaults.ZeroStage,
            SequenceParallel = o.Has("--sequence-parallel"),
            Recompute = o.Enum("--recompute", defaults.Recompute),
            Attention = o.Enum("--attention", defaults.Attention),
            ComputeEfficiency = o.DoubleOrNull("--efficiency") ?? defaults.ComputeEfficiency,
            CommunicationEfficiency = o.DoubleOrNull("--comm-efficiency") ?? defaults.CommunicationEfficiency,
            MemoryReserveFraction = o.DoubleOrNull("--reserve") ?? defaults.MemoryReserveFraction,
        };
    }

    /// <summary>"--name value" pairs and bare flags; every option must be read, or it is reported as unknown.</summary>
    private sealed class Options
    {
        private readonly Dictionary<string, string?> values = [];
        private readonly HashSet<string> used = [];

        public static Options Parse(string[] args)
        {
            var o = new Options();
            for (var i = 0; i < args.Length; i++)
            {
                var name = args[i];
                if (!name.StartsWith('-'))
                {
                    throw new ArgumentException($"unexpected argument '{name}' (options start with --)");
                }
                if (o.values.ContainsKey(name))
                {
                    throw new ArgumentException($"option {name} is given twice");
                }
                if (Flags.Contains(name))
                {
                    o.values[name] = null;
                    continue;
                }
                if (i + 1 >= args.Length)
                {
                    throw new ArgumentException($"option {name} needs a value");
                }
                o.values[name] = args[++i];
            }
            return o;
        }

        public bool Has(string name)
        {
            used.Add(name);
            return values.ContainsKey(name);
        }

        public string? StringOrNull(string name) => Has(name) ? values[name] : null;

        public int? IntOrNull(string name) => StringOrNull(name) is { } s
            ? int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v
                : throw new FormatException($"{name} needs an integer (got '{s}')")
            : null;

        public int Int(string name) => IntOrNull(name) ?? throw Missing(name);

        public double? DoubleOrNull(string name) => StringOrNull(name) is { } s
            ? double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v
                : throw new FormatException($"{name} needs a number (got '{s}')")
            : null;

        public double Double(string name) => DoubleOrNull(name) ?? throw Missing(name);

        public IReadOnlyList<int>? IntListOrNull(string name) => StringOrNull(name) is { } s
            ? [.. s.Split(',').Select(part => int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v
                : throw new FormatException($"{name} needs integers separated by commas (got '{s}')"))]
            : null;

        public T Enum<T>(string name, T fallback) where T : struct, Enum => StringOrNull(name) is { } s
            ? System.Enum.TryParse<T>(s, ignoreCase: true, out var v) && System.Enum.IsDefined(v) && !char.IsDigit(s[0]) ? v
                : throw new ArgumentException($"{name} must be one of {string.Join(", ", System.Enum.GetNames<T>().Select(n => n.ToLowerInvariant()))} (got '{s}')")
            : fallback;

        public void RejectUnused()
        {
            var unknown = values.Keys.Where(k => !used.Contains(k)).ToList();
            if (unknown.Count > 0)
            {
                throw new ArgumentException($"unknown option {string.Join(", ", unknown)} (mp plan --help lists them)");
            }
        }

        private static ArgumentException Missing(string name) => new($"missing {name} (mp plan --help lists the options)");
    }
}
