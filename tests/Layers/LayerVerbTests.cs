using ModelParallel.Cli;

namespace ModelParallel.Tests.Layers;

[Collection(nameof(ConsoleCollection))]
public class LayerVerbTests
{
    private static readonly string[] Small =
        ["--backend", "cpu", "--hidden", "64", "--heads", "4", "--kv-heads", "2", "--ffn", "128", "--seq", "8", "--batch", "2", "--iterations", "1"];

    [Fact]
    public void ChecksTpAgainstTpOneAndPrintsErrorsCollectivesAndTimes()
    {
        var (code, output) = Run(["--tp", "2", .. Small]);
        Assert.Equal(0, code);
        Assert.Contains("gradient of layer.mlp.linear_fc1.weight", output, StringComparison.Ordinal);
        Assert.Contains($"forward        2 all-reduces of {16 * 64 * sizeof(float)} B", output, StringComparison.Ordinal);
        Assert.Contains($"backward       2 all-reduces of {16 * 64 * sizeof(float)} B", output, StringComparison.Ordinal);
        Assert.Matches(@"forward +\d+\.\d{3} ms +\d+\.\d{3} ms", output);
        Assert.Matches(@"backward +\d+\.\d{3} ms +\d+\.\d{3} ms", output);
        Assert.Contains("ok: largest relative error", output, StringComparison.Ordinal);
    }

    [Fact]
    public void SequenceParallelRunReportsGatherAndScatterPairs()
    {
        var (code, output) = Run(["--tp", "4", "--sp", .. Small]);
        Assert.Equal(0, code);
        Assert.Contains($"forward        2 all-gathers of {16 * 64 * sizeof(float)} B; 2 reduce-scatters of {16 * 64 * sizeof(float)} B", output, StringComparison.Ordinal);
    }

    [Fact]
    public void BadArgumentsThrowNamingThem()
    {
        Assert.Contains("--tp is required", Assert.Throws<ArgumentException>(() => Run(Small)).Message, StringComparison.Ordinal);
        Assert.Contains("'--wide'", Assert.Throws<ArgumentException>(() => Run(["--tp", "2", "--wide"])).Message, StringComparison.Ordinal);
        Assert.Contains("'two'", Assert.Throws<ArgumentException>(() => Run(["--tp", "two"])).Message, StringComparison.Ordinal);
        Assert.Contains("ffn hidden size 130", Assert.Throws<ArgumentException>(() => Run(["--tp", "4", .. Small, "--ffn", "130"])).Message,
            StringComparison.Ordinal);
    }

    private static (int Code, string Output) Run(string[] args)
    {
        var previous = Console.Out;
        using var writer = new StringWriter();
        Console.SetOut(writer);
        try
        {
            return (new LayerVerb().Run(args), writer.ToString());
        }
        finally
        {
            Console.SetOut(previous);
        }
    }
}
