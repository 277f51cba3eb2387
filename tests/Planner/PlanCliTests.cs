using System.Text.Json;

namespace ModelParallel.Tests.Planner;

public sealed class PlanCliTests
{
    private static readonly string[] Llama70B =
        ["plan", "--model", "llama2-70b", "--cluster", "h100x8", "--nodes", "16", "--global-batch", "1024", "--zero", "1", "--sequence-parallel"];

    [Fact]
    public void PrintsATableTheMathAndWhyTheRunnersUpLose()
    {
        var (rc, text) = MpCli.Run(Llama70B);
        Assert.Equal(0, rc);
        Assert.Contains("the best 5, at most one per (TP, PP, DP)", text);
        Assert.Contains("Plan 1: TP=", text);
        Assert.Matches(@"optimizer states\s+\S+ GB\s+12 B x \S+ / DP \d+", text);
        Assert.Contains("Pipeline bubble: (p-1)/(v m) = ", text);
        Assert.Contains("Why the runners-up lose", text);
        Assert.Equal(4, text.Split('\n').Count(line => line.StartsWith("  ") && line.Contains("per step (")));
    }

    [Fact]
    public void WritesJson()
    {
        var top = Random.Shared.Next(1, 8);
        var (rc, text) = MpCli.Run([.. Llama70B, "--json", "--top", $"{top}"]);
        Assert.Equal(0, rc);
        using var json = JsonDocument.Parse(text);
        var plans = json.RootElement.GetProperty("plans");
        Assert.Equal(top, plans.GetArrayLength());
        var best = plans[0];
        var layout = best.GetProperty("layout");
        Assert.Equal(128, layout.GetProperty("tp").GetInt32() * layout.GetProperty("pp").GetInt32() * layout.GetProperty("dp").GetInt32());
        Assert.True(best.GetProperty("fits").GetBoolean());
        Assert.Equal("Bytes", best.GetProperty("stages")[0].GetProperty("terms")[0].GetProperty("unit").GetString());
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("whyNothingFits").ValueKind);
    }

    [Fact]
    public void ACustomModelOnACustomClusterIsPlanned()
    {
        var (rc, text) = MpCli.Run("plan", "--layers", "24", "--hidden", "2048", "--heads", "16", "--ffn", "8192", "--activation", "gelu",
            "--vocab", "50304", "--seq", "2048", "--gpus-per-node", "4", "--nodes", "2", "--gpu-memory-gb", "40", "--peak-tflops", "312",
            "--intra-bw-gbs", "300", "--inter-bw-gbs", "25", "--global-batch", "256");
        Assert.Equal(0, rc);
        Assert.Contains("custom: 2 nodes x 4 GPUs = 8,", text);
    }

    [Fact]
    public void NothingFitsExitsWithOneAndSaysWhy()
    {
        var (rc, text) = MpCli.Run("plan", "--model", "llama3-405b", "--cluster", "h100x8", "--global-batch", "64");
        Assert.Equal(1, rc);
        Assert.Contains("No layout of llama3-405b fits on 8 GPUs", text);
        Assert.Contains("over by", text);
    }

    [Theory]
    [InlineData("unknown option --frobnicate", "--frobnicate", "1")]
    [InlineData("--tp needs an integer (got 'x')", "--tp", "x")]
    [InlineData("--recompute must be one of none, selective, full (got 'some')", "--recompute", "some")]
    [InlineData("TP 3 does not divide the 8 GPUs per node", "--tp", "3")]
    public void BadOptionsAreNamed(string message, string option, string value)
    {
        var e = Record.Exception(() => MpCli.Run([.. Llama70B, option, value]));
        Assert.True(e is ArgumentException or FormatException, e?.ToString());
        Assert.Contains(message, e!.Message);
    }

    [Fact]
    public void MissingRequiredOptionsAreNamed()
    {
        Assert.Contains("missing --global-batch", Assert.Throws<ArgumentException>(() => MpCli.Run("plan", "--model", "llama2-7b", "--cluster", "h100x8")).Message);
        Assert.Contains("missing --heads", Assert.Throws<ArgumentException>(() => MpCli.Run("plan", "--cluster", "h100x8", "--global-batch", "8")).Message);
        Assert.Contains("unknown model preset 'gpt5'", Assert.Throws<ArgumentException>(() => MpCli.Run("plan", "--model", "gpt5")).Message);
    }
}
