using ModelParallel.Cli;
using ModelParallel.Runtime.Cuda;
using ModelParallel.Tests.Layers;

namespace ModelParallel.Tests.Cli;

/// <summary>What every verb of <c>mp</c> shares: <c>--help</c>, exit codes, stdout for results and stderr for the rest.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class VerbHelpTests
{
    public static TheoryData<string, string> VerbsAndHelpFlags()
    {
        var data = new TheoryData<string, string>();
        foreach (var verb in Verbs.All)
        {
            data.Add(verb.Name, "--help");
            data.Add(verb.Name, "-h");
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(VerbsAndHelpFlags))]
    public void EveryVerbPrintsItsUsageToStdoutAndExitsZero(string verb, string flag)
    {
        var (code, output, errors) = Capture(() => Program.Main([verb, flag]));
        Assert.Equal(0, code);
        Assert.StartsWith($"usage: mp {verb}", output, StringComparison.Ordinal);
        Assert.Equal("", errors);
    }

    [Fact]
    public void LaunchTakesHelpFromItsOwnOptionsOnly()
    {
        Assert.True(LaunchVerb.IsHelp(["--nproc-per-node", "2", "--help"]));
        Assert.False(LaunchVerb.IsHelp(["--nproc-per-node", "2", "--", "train", "--help"]));
        Assert.False(LaunchVerb.IsHelp(["--nproc-per-node", "2", "train", "-h"]));
    }

    [Fact]
    public void UsageStatesTheExitCodes()
    {
        var (code, output, _) = Capture(() => Program.Main(["--help"]));
        Assert.Equal(0, code);
        Assert.Contains("exit codes: 0 ok, 1 a check or run failed", output, StringComparison.Ordinal);
        Assert.Contains("2 bad input", output, StringComparison.Ordinal);
    }

    [Fact]
    public void InfoRefusesCudaWhereItCannotBeUsedInOneLineWithExitOne()
    {
        Assert.SkipWhen(CudaBackend.TryGetDeviceCount(out _, out _), "CUDA can be used here");
        var (code, output, errors) = Capture(() => Program.Main(["info", "--backend", "cuda"]));
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.StartsWith("mp info: CUDA cannot be used: ", errors, StringComparison.Ordinal);
        Assert.Single(errors.TrimEnd().Split('\n'));
    }

    [Fact]
    public void BadInputIsOneLineOnStderrWithExitTwo()
    {
        var (code, output, errors) = Capture(() => Program.Main(["plan", "--model", "llama2-7b", "--cluster", "h100x8", "--nodes", "1000000000", "--global-batch", "1024"]));
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Contains("--nodes", errors, StringComparison.Ordinal);
        Assert.Contains("1000000000", errors, StringComparison.Ordinal);
        Assert.Single(errors.TrimEnd().Split('\n'));
    }

    internal static (int Code, string Output, string Errors) Capture(Func<int> run)
    {
        var (previousOut, previousError) = (Console.Out, Console.Error);
        using var output = new StringWriter();
        using var errors = new StringWriter();
        Console.SetOut(output);
        Console.SetError(errors);
        try
        {
            return (run(), output.ToString(), errors.ToString());
        }
        finally
        {
            Console.SetOut(previousOut);
            Console.SetError(previousError);
        }
    }
}
