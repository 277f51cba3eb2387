using System.Diagnostics;
using System.Globalization;
using ModelParallel.Layers;
using ModelParallel.Layers.HuggingFace;
using ModelParallel.Runtime;
using ModelParallel.Runtime.SafeTensors;

namespace ModelParallel.Cli;

/// <summary>
/// <c>mp hf FOLDER</c>: reads a Hugging Face Llama model folder (config.json and safetensors), builds the model at
/// TP = N on the chosen backend, loads each rank's shards and reports what it loaded. With <c>--check REFERENCE</c>
/// (a reference.safetensors from scripts/hf_llama_fixtures.py or scripts/hf_llama_reference.py) it runs one forward and
/// backward on the reference's tokens and compares the logits, the loss and the gradients with transformers' float64
/// results; where the reference also holds transformers' own bf16 results, this library's error must be at most
/// 1.5 times transformers' bf16 error, else within the backend's float tolerance. Exits 1 on a mismatch, 2 on a
/// malformed file or option.
/// </summary>
public sealed class HfVerb : IVerb
{
    private const string Help =
        "usage: mp hf FOLDER [--backend auto|cpu|cuda] [--tp N] [--sp] [--cpu-dtype float32|float64]\n" +
        "                    [--check REFERENCE.safetensors] [--export FOLDER --dtype f32|bf16|f64]";

    /// <summary>This library's error may be at most this multiple of transformers' own bf16 error.</summary>
    private const double Bf16Ratio = 1.5;

    private static readonly string[] Flags = ["--sp", "--help", "-h"];

    public string Name => "hf";

    public string Summary => "load a Hugging Face Llama folder, report it, check it against transformers' results";

    public int Run(string[] args)
    {
        if (args.Length == 0 || args[0] is "--help" or "-h")
        {
            Console.WriteLine(Help);
            return args.Length == 0 ? 2 : 0;
        }
        string folder = args[0];
        var line = CommandLine.Parse(args[1..], Flags, laterOverrides: true);
        if (line.HelpRequested())
        {
            Console.WriteLine(Help);
            return 0;
        }
        var backend = Backends.Parse(line.String("--backend") ?? "auto");
        int tp = line.Int("--tp", min: 1) ?? 1;
        bool sp = line.Has("--sp");
        var cpuDtype = line.String("--cpu-dtype") switch
        {
            null or "float64" => DType.Float64,
            "float32" => DType.Float32,
            var other => throw new ArgumentException($"--cpu-dtype must be float32 or float64 (got '{other}')"),
        };
        string? check = line.String("--check");
        string? export = line.String("--export");
        var exportType = line.String("--dtype") switch
        {
            null or "bf16" => SafeTensorsDType.BF16,
            "f32" => SafeTensorsDType.F32,
            "f64" => SafeTensorsDType.F64,
            var other => throw new ArgumentException($"--dtype must be f32, bf16 or f64 (got '{other}')"),
        };
        line.RejectUnknown(option => $"unknown option '{option}'\n{Help}");

        var config = LlamaConfigJson.Read(folder);
        var t = config.Transformer;
        Console.WriteLine($"config: {config.Layers} layers, hidden {t.HiddenSize}, heads {t.AttentionHeads} (key/value {t.QueryGroups}), " +
            $"head_dim {t.HeadDim}, ffn {t.FfnHiddenSize}, vocab {config.VocabSize}, rms eps {t.NormEpsilon:R}, rope theta {t.RotaryBase:R}" +
            (t.RopeScaling is { } s ? $", llama3 scaling {s}" : "") + (config.ShareEmbeddingsAndOutputWeights ? ", tied embeddings" : ""));
        using var weights = SafeTensorsCheckpoint.Open(folder);
        LlamaCheckpoint.Validate(config, weights);
        long parameters = LlamaMapping.Tensors(LlamaMapping.For(config, config.VocabSize)).Sum(x => x.Count);
        var dtypes = weights.Names.GroupBy(n => weights.Info(n).DType).Select(g => $"{g.Count()} {g.Key}");
        Console.WriteLine($"files: {string.Join(", ", weights.Files.Select(Path.GetFileName))}; {weights.Names.Count} tensors ({string.Join(", ", dtypes)}); " +
            $"{parameters:N0} parameters");
        using var reference = check is null ? null : SafeTensorsFile.Open(check);
        var batch = reference is null ? null : LlamaBatch.Read(reference);

        var results = new RankResult[tp];
        ThreadWorlds.Run(backend, tp, ctx => results[ctx.Rank] = RunRank(ctx, config, weights, sp, batch, reference, export, exportType),
            cpuDtype);
        var first = results[0];
        Console.WriteLine($"backend {first.Device}, compute {first.Compute}, TP={tp}{(sp ? " SP" : "")}");
        foreach (var (r, i) in results.Select((r, i) => (r, i)))
        {
            Console.WriteLine($"  rank {i}: read {r.Report.Elements:N0} elements of {r.Report.Tensors} tensors in {r.LoadSeconds:0.00} s" +
                (r.Report.Ignored.Count > 0 ? $" (ignored: {string.Join(", ", r.Report.Ignored)})" : ""));
        }
        if (export is not null)
        {
            Console.WriteLine($"exported to {export} ({exportType})");
        }
        return reference is null ? 0 : Compare(first, reference);
    }

    private static RankResult RunRank(RankContext ctx, GptConfig config, ITensorReader weights, bool sp, LlamaBatch? batch,
        ITensorReader? reference, string? export, SafeTensorsDType exportType)
    {
        var context = new ParallelContext(ctx.Backend, ctx.World, sp);
        using var model = new GptModel(context, config);
        var clock = Stopwatch.StartNew();
        var report = LlamaCheckpoint.Load(model, weights);
        ctx.Backend.Synchronize();
        double loadSeconds = clock.Elapsed.TotalSeconds;
        if (export is not null)
        {
            LlamaCheckpoint.Export(model, export, exportType);
        }
        LlamaOutputs? outputs = null;
        if (batch is not null)
        {
            outputs = LlamaRun.ForwardBackward(model, batch, wantGradient: name => reference!.Contains("grad." + name));
        }
        return new RankResult(ctx.Backend.Name, ctx.Backend.Compute, report, loadSeconds, outputs);
    }

    /// <summary>Prints every comparison with the reference; 0 when all pass, 1 otherwise.</summary>
    private static int Compare(RankResult result, ITensorReader reference)
    {
        var outputs = result.Outputs!;
        double tol = result.Compute switch
        {
            DType.Float64 => 1e-12,
            DType.Float32 => 1e-5,
            _ => 2e-2,
        };
        Console.WriteLine($"against transformers in float64 ({reference.Names.Count} reference tensors):");
        Console.WriteLine($"  {"",-52} {"ours",10} {"hf bf16",10} {"ratio",7}");
        bool ok = true;
        var rows = new List<(string What, double[] Ours, string Name)>
        {
            ("logits", outputs.Logits, "logits"),
            ("loss", [outputs.Loss], "loss"),
        };
        rows.AddRange(outputs.Gradients.OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => ($"gradient of {g.Key}", g.Value, "grad." + g.Key)));
        foreach (var (what, ours, name) in rows)
        {
            var expected = ReadAll(reference, name);
            double err = HostReference.RelativeError(ours, expected);
            string hfName = "bf16_" + name;
            string line;
            bool pass;
            if (name == "loss")
            {
                // A single number: reported, not judged (its error is one sample of the logits' rounding).
                pass = true;
                line = $"{Format(err),10} {(reference.Contains(hfName) ? Format(HostReference.RelativeError(ReadAll(reference, hfName), expected)) : ""),10} {"",7}";
            }
            else if (reference.Contains(hfName))
            {
                double hfErr = HostReference.RelativeError(ReadAll(reference, hfName), expected);
                double ratio = err / hfErr;
                pass = err <= Bf16Ratio * hfErr;
                line = $"{Format(err),10} {Format(hfErr),10} {ratio,7:0.00}";
            }
            else
            {
                pass = err <= tol;
                line = $"{Format(err),10} {"",10} {"",7}";
            }
            ok &= pass;
            Console.WriteLine($"  {what,-52} {line}{(pass ? "" : "  MISMATCH")}");
        }
        var f64 = ReadAll(reference, "logits");
        int vocab = checked((int)reference.Info("logits").Shape[^1]);
        Console.WriteLine($"  top-1 agreement with float64: ours {Top1(outputs.Logits, f64, vocab):P2}" +
            (reference.Contains("bf16_logits") ? $", transformers bf16 {Top1(ReadAll(reference, "bf16_logits"), f64, vocab):P2}" : ""));
        Console.WriteLine(ok
            ? $"ok: every error within {(reference.Contains("bf16_logits") ? $"{Bf16Ratio}x transformers' bf16 error" : $"{Format(tol)}")}"
            : "MISMATCH");
        return ok ? 0 : 1;
    }

    /// <summary>Fraction of tokens whose largest logit is at the same vocabulary entry in both.</summary>
    private static double Top1(double[] logits, double[] reference, int vocab)
    {
        int tokens = reference.Length / vocab, same = 0;
        for (int i = 0; i < tokens; i++)
        {
            same += ArgMax(logits.AsSpan(i * vocab, vocab)) == ArgMax(reference.AsSpan(i * vocab, vocab)) ? 1 : 0;
        }
        return (double)same / tokens;
    }

    private static int ArgMax(ReadOnlySpan<double> row)
    {
        int best = 0;
        for (int j = 1; j < row.Length; j++)
        {
            best = row[j] > row[best] ? j : best;
        }
        return best;
    }

    private static double[] ReadAll(ITensorReader reader, string name)
    {
        var values = new double[reader.Info(name).Count];
        reader.Read(name, 0, values);
        return values;
    }

    private static string Format(double value) => value.ToString("0.00E+00", CultureInfo.InvariantCulture);

    private sealed record RankResult(string Device, DType Compute, LlamaLoadReport Report, double LoadSeconds, LlamaOutputs? Outputs);
}
