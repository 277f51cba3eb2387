using ModelParallel.Tests.Support;
using ModelParallel.Tests.Layers;

namespace ModelParallel.Tests.Training;

/// <summary><c>mp pipeline</c>: a step checked against one rank, the timelines, a trace; bad input refused in one line before any work.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class PipelineVerbTests : IDisposable
{
    private static readonly string[] Small =
        ["--backend", "cpu", "--num-layers", "4", "--hidden-size", "32", "--ffn-hidden-size", "64", "--seq-length", "8", "--vocab-size", "61"];

    private readonly string _dir = Directory.CreateTempSubdirectory("mp-pipeline").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void RunsAScheduleChecksItAndWritesATrace()
    {
        string trace = Path.Combine(_dir, "trace.json");
        var (code, output, error) = Run(["pipeline", "--pipeline-model-parallel-size", "2", "--tensor-model-parallel-size", "2",
            "--sequence-parallel", "--pipeline-schedule", "zb-h1", "--global-batch-size", "4", "--tie-embeddings",
            "--recompute-num-layers", "1", "--trace", trace, .. Small]);
        Assert.True(code == 0, output + error);
        Assert.Contains("pipeline: zb-h1, PP=2, virtual stages 1, layout [2,2]", output, StringComparison.Ordinal);
        Assert.Contains("bubble = idle time / compute time", output, StringComparison.Ordinal);
        Assert.Matches(@"rank 0 \|F0", output);
        Assert.Contains("bubble: simulated 0.", output, StringComparison.Ordinal);
        Assert.Matches(@"rank 1: compute [0-9.]+ ms of [0-9.]+ ms, bubble [0-9.]+, peak activations [0-9.]+ KiB", output);
        Assert.Contains("gradient of embedding.word_embeddings.weight", output, StringComparison.Ordinal);
        Assert.Contains("ok: largest relative error", output, StringComparison.Ordinal);
        string json = File.ReadAllText(trace);
        Assert.Contains("\"traceEvents\"", json, StringComparison.Ordinal);
        Assert.Contains("\"name\":\"W(s1,mb3)\"", json, StringComparison.Ordinal);
        Assert.Contains("\"name\":\"SEND_F(s0,mb0)\"", json, StringComparison.Ordinal);
    }

    public static TheoryData<string[], string> BadInput => new()
    {
        { ["--pipeline-model-parallel-size", "2", "--pipeline-schedule", "interleaved-1f1b", "--num-layers-per-virtual-pipeline-stage", "1", "--global-batch-size", "3"], "must be a multiple of ranks 2" },
        { ["--pipeline-model-parallel-size", "4", "--pipeline-schedule", "interleaved-1f1b", "--num-layers-per-virtual-pipeline-stage", "1"], "virtual stages 1: must be at least 2" },
        { ["--pipeline-model-parallel-size", "3"], "4 layers do not split evenly over 3 pipeline stages" },
        { ["--pipeline-model-parallel-size", "2", "--pipeline-layout", "1,2"], "sums to 3 layers; the model has 4" },
        { ["--pipeline-model-parallel-size", "2", "--num-layers-per-virtual-pipeline-stage", "3"], "--num-layers 4 is not a multiple of pipeline size 2 x --num-layers-per-virtual-pipeline-stage 3" },
        { ["--pipeline-model-parallel-size", "2", "--global-batch-size", "5", "--micro-batch-size", "2"], "--global-batch-size 5 is not a multiple of --micro-batch-size 2" },
        { ["--pipeline-model-parallel-size", "2", "--pipeline-schedule", "zb-h2"], "zb-h2" },
    };

    [Theory]
    [MemberData(nameof(BadInput))]
    public void BadInputEndsInOneLineAndExitCode2(string[] args, string expected)
    {
        var (code, output, error) = Run(["pipeline", .. args, .. Small]);
        Assert.Equal(2, code);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.Single(error.Trim().Split('\n'));
        Assert.DoesNotContain("ran on", output, StringComparison.Ordinal);
    }

    private static (int Code, string Output, string Error) Run(string[] args) => MpRun.Run(args);
}
