using ModelParallel.Layers;
using ModelParallel.Layers.HuggingFace;
using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Runtime.SafeTensors;
using ModelParallel.Tests.Layers;
using ModelParallel.Tests.Support;
using ModelParallel.Training.Pipeline;

namespace ModelParallel.Tests.Training;

/// <summary>
/// The pipeline against transformers: the float64 fixtures loaded stage by stage through the Hugging Face mapping, one
/// sequence per micro-batch, give transformers' loss and every gradient of the whole batch.
/// </summary>
public class PipelineHfFixtureTests
{
    private const double Tol = 1e-13;

    [Theory]
    [InlineData("gqa", "1f1b", 2, 1, false)]
    [InlineData("gqa", "zb-h1", 2, 2, true)]
    [InlineData("tied-llama3", "gpipe", 3, 1, false)]
    [InlineData("tied-llama3", "zb-h1", 3, 2, true)]
    [InlineData("mha", "interleaved-1f1b", 1, 2, false)]
    [InlineData("mha", "1f1b", 2, 4, true)]
    public void MatchesTransformers(string fixture, string kind, int pp, int tp, bool sp)
    {
        string folder = HfLlamaFixtureTests.Folder(fixture);
        var config = LlamaConfigJson.Read(folder);
        using var weights = SafeTensorsCheckpoint.Open(folder);
        using var reference = SafeTensorsFile.Open(Path.Combine(folder, "reference.safetensors"));
        var ids = BatchRows(reference, "input_ids");
        var targets = BatchRows(reference, "targets");
        int m = ids.Length, v = kind == "interleaved-1f1b" ? config.Layers / pp : 1;
        var micro = new TokenShape(ids[0].Length, 1);
        var schedule = PipelineCommunication.Insert(ScheduleGenerator.Create(ScheduleKinds.Parse(kind), pp, m, v));
        var layout = v > 1 ? PipelineLayout.Even(config.Layers, pp * v) : PipelineLayout.Explicit(Split(config.Layers, pp), config.Layers, pp);
        var results = new (double Loss, Dictionary<string, double[]> Grads)[tp * pp];
        CpuWorld.Run(tp * pp, DType.Float64, ctx =>
        {
            using var groups = ProcessGroups.Create(ctx.World, tp, pp);
            var context = new ParallelContext(ctx.Backend, groups.TensorParallel, sp);
            using var executor = new PipelineExecutor(context, groups.PipelineParallel, config, layout, schedule, micro);
            int padded = VocabParallelEmbedding.PaddedVocabSize(config.VocabSize, tp);
            LlamaCheckpoint.Load(config, padded, executor.Parameters, weights);
            var step = executor.Step(ids, targets);
            results[ctx.Rank] = (step.Loss, executor.SaveGradients());
        });
        var all = results.SelectMany(r => r.Grads).DistinctBy(g => g.Key).ToDictionary(g => g.Key, g => g.Value);
        int paddedVocab = VocabParallelEmbedding.PaddedVocabSize(config.VocabSize, tp);
        var hf = LlamaMapping.ToHuggingFace(LlamaMapping.For(config, paddedVocab), all);
        string what = $"{fixture} {kind} PP={pp} TP={tp}{(sp ? " SP" : "")} layout {layout}";
        double expectedLoss = HfLlamaFixtureTests.ReadAll(reference, "loss")[0];
        Assert.All(results, r => Assert.True(Math.Abs(r.Loss - expectedLoss) <= Tol * expectedLoss, $"{what}: loss {r.Loss} vs {expectedLoss}"));
        foreach (string name in reference.Names.Where(n => n.StartsWith("grad.", StringComparison.Ordinal)))
        {
            string hfName = name["grad.".Length..];
            Numerics.AssertClose(hf[hfName], HfLlamaFixtureTests.ReadAll(reference, name), Tol, $"{what}: gradient of {hfName}");
        }
    }

    /// <summary>Each row of a [batch, seq] integer tensor: one micro-batch of one sequence.</summary>
    private static int[][] BatchRows(ITensorReader reader, string name)
    {
        var shape = reader.Info(name).Shape;
        int batch = checked((int)shape[0]), seq = checked((int)shape[1]);
        var all = new int[batch * seq];
        reader.Read(name, 0, all);
        return Enumerable.Range(0, batch).Select(b => all[(b * seq)..((b + 1) * seq)]).ToArray();
    }

    /// <summary>Layers over stages as evenly as they go, the remainder on the middle stages.</summary>
    private static int[] Split(int layers, int stages) =>
        Enumerable.Range(0, stages).Select(s => layers / stages + (s > 0 && s <= layers % stages ? 1 : 0)).ToArray();
}
