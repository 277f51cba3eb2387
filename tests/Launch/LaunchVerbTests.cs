using ModelParallel.Cli;

namespace ModelParallel.Tests.Launch;

public sealed class LaunchVerbTests
{
    [Fact]
    public void ParsesEveryOption()
    {
        int nproc = Random.Shared.Next(1, 9), port = Random.Shared.Next(1024, 65536);
        var options = LaunchVerb.Parse(
            ["--nproc-per-node", $"{nproc}", "--master-addr", "node-3", "--master-port", $"{port}", "--nnodes", "4", "--node-rank", "3",
             "--", "train", "--lr", "3e-4"]);
        Assert.Equal(nproc, options.NprocPerNode);
        Assert.Equal("node-3", options.MasterAddr);
        Assert.Equal(port, options.MasterPort);
        Assert.Equal(4, options.Nnodes);
        Assert.Equal(3, options.NodeRank);
        Assert.Equal("train", options.Program);
        Assert.Equal(["--lr", "3e-4"], options.Arguments);
    }

    [Fact]
    public void DefaultsAreOneNodeAndAFreePortChosenLater()
    {
        var options = LaunchVerb.Parse(["--nproc-per-node", "2", "train"]);
        Assert.Equal(1, options.Nnodes);
        Assert.Equal(0, options.NodeRank);
        Assert.Null(options.MasterAddr);
        Assert.Null(options.MasterPort);
        Assert.Equal("train", options.Program);
        Assert.Empty(options.Arguments);
    }

    [Theory]
    [InlineData("unknown option '--nproc' (known: --nproc-per-node, --master-addr, --master-port, --nnodes, --node-rank)", "--nproc", "2", "--", "x")]
    [InlineData("option --master-port needs a value", "--nproc-per-node", "2", "--master-port")]
    [InlineData("option --nproc-per-node 'four' is not an integer", "--nproc-per-node", "four", "--", "x")]
    [InlineData("option --master-port '29500.5' is not an integer", "--nproc-per-node", "2", "--master-port", "29500.5", "--", "x")]
    [InlineData("option --nnodes is given twice", "--nproc-per-node", "2", "--nnodes", "1", "--nnodes", "1", "--", "x")]
    [InlineData("option --nproc-per-node is required", "--master-port", "29500", "--", "x")]
    [InlineData("the PROGRAM to launch is missing (mp launch --nproc-per-node N -- PROGRAM ARGS)", "--nproc-per-node", "2", "--")]
    [InlineData("nproc-per-node must be at least 1, got -3", "--nproc-per-node", "-3", "--", "x")]
    [InlineData("master-port 0 is not a TCP port (expected 1 to 65535)", "--nproc-per-node", "2", "--master-port", "0", "--", "x")]
    [InlineData("node-rank 1 is out of range for nnodes 1 (expected 0 to 0)", "--nproc-per-node", "2", "--node-rank", "1", "--", "x")]
    public void BadArgumentsAreNamed(string message, params string[] args)
    {
        Assert.Equal(message, Assert.Throws<ArgumentException>(() => LaunchVerb.Parse(args)).Message);
    }

    [Fact]
    public void BadArgumentsExitWithTwo()
    {
        var error = new StringWriter();
        var previous = Console.Error;
        Console.SetError(error);
        try
        {
            Assert.Equal(2, Program.Main(["launch", "--nproc-per-node", "zero", "--", "x"]));
        }
        finally
        {
            Console.SetError(previous);
        }
        Assert.Contains("mp launch: option --nproc-per-node 'zero' is not an integer", error.ToString());
    }
}
