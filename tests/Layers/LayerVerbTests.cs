using ModelParallel.Layers;
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

    [Theory]
    [InlineData("--tp 50000", "--tp 50000: more than 1024 ranks")]
    [InlineData("--tp 3", "attention heads 4 is not divisible by tensor-parallel size 3")]
    [InlineData("--tp 4 --ffn 130", "ffn hidden size 130 is not divisible by tensor-parallel size 4")]
    [InlineData("--tp 4 --kv-heads 4 --heads 12 --hidden 96", "attention heads 12 is not divisible by tensor-parallel size 8")]
    [InlineData("--tp 4 --kv-heads 3 --heads 12 --hidden 96", "key/value heads 3 and tensor-parallel size 4: one must divide the other")]
    [InlineData("--tp 4 --sp --seq 3 --batch 1", "tokens (sequence 3 x batch 1) 3 is not divisible by tensor-parallel size (sequence parallelism) 4")]
    [InlineData("--tp 2 --seq 100000 --batch 100000", "--seq 100000 x --batch 100000: sequence 100000 x batch 100000 = 10000000000 tokens")]
    [InlineData("--tp 2 --ffn -8", "--ffn must be positive (got -8)")]
    public void SizesAreCheckedAgainstTpBeforeAnythingRuns(string sizes, string message)
    {
        // The last --tp and sizes given count (options appended to a command line change it).
        string[] args = [.. Small, .. sizes.Split(' ')];
        if (sizes.Contains("--tp 4 --kv-heads 4", StringComparison.Ordinal))
        {
            args = [.. args, "--tp", "8"];
        }
        var previous = Console.Out;
        using var writer = new StringWriter();
        Console.SetOut(writer);
        try
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var e = Assert.Throws<ArgumentException>(() => new LayerVerb().Run(args));
            Assert.Contains(message, e.Message, StringComparison.Ordinal);
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"took {watch.Elapsed}");
        }
        finally
        {
            Console.SetOut(previous);
        }
        Assert.Equal("", writer.ToString());
    }

    [Fact]
    public void TokenShapeRefusesATokenCountBeyondInt()
    {
        var e = Assert.Throws<ArgumentException>(() => new TokenShape(100_000, 100_000));
        Assert.Contains("sequence 100000 x batch 100000 = 10000000000 tokens", e.Message, StringComparison.Ordinal);
        Assert.Equal(int.MaxValue, new TokenShape(int.MaxValue, 1).Tokens);
        Assert.Null(TokenShape.Problem(46340, 46340));
        Assert.NotNull(TokenShape.Problem(46341, 46341));
    }

    [Fact]
    public void ValidationFromTheNumbersAgreesWithTheConstructor()
    {
        var config = new TransformerConfig(96, 12, 4, 384, MlpActivation.SwiGlu, ModelParallel.Runtime.NormKind.RmsNorm, false);
        TransformerLayer.Validate("layer", config, 4, sequenceParallel: true, new TokenShape(8, 2));
        TransformerLayer.Validate("layer", config, 12, sequenceParallel: false);
        Assert.Throws<ArgumentException>(() => TransformerLayer.Validate("layer", config, 5, sequenceParallel: false));
        Assert.Throws<ArgumentException>(() => TransformerLayer.Validate("layer", config, 4, sequenceParallel: true, new TokenShape(3, 1)));
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
