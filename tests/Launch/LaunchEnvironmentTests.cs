using ModelParallel.Runtime.Launch;

namespace ModelParallel.Tests.Launch;

public sealed class LaunchEnvironmentTests
{
    private static Dictionary<string, string> RandomVariables()
    {
        int worldSize = Random.Shared.Next(2, 65);
        int localWorldSize = Random.Shared.Next(1, worldSize + 1);
        return new Dictionary<string, string>
        {
            ["RANK"] = Random.Shared.Next(worldSize).ToString(),
            ["WORLD_SIZE"] = worldSize.ToString(),
            ["LOCAL_RANK"] = Random.Shared.Next(localWorldSize).ToString(),
            ["LOCAL_WORLD_SIZE"] = localWorldSize.ToString(),
            ["MASTER_ADDR"] = $"10.{Random.Shared.Next(256)}.{Random.Shared.Next(256)}.{Random.Shared.Next(1, 255)}",
            ["MASTER_PORT"] = Random.Shared.Next(1024, 65536).ToString(),
        };
    }

    private static LaunchEnvironment Parse(Dictionary<string, string> variables) =>
        LaunchEnvironment.FromVariables(name => variables.GetValueOrDefault(name));

    private static string ParseError(Dictionary<string, string> variables) =>
        Assert.Throws<InvalidOperationException>(() => Parse(variables)).Message;

    [Fact]
    public void ReadsEveryVariable()
    {
        var variables = RandomVariables();
        var env = Parse(variables);
        Assert.Equal(int.Parse(variables["RANK"]), env.Rank);
        Assert.Equal(int.Parse(variables["WORLD_SIZE"]), env.WorldSize);
        Assert.Equal(int.Parse(variables["LOCAL_RANK"]), env.LocalRank);
        Assert.Equal(int.Parse(variables["LOCAL_WORLD_SIZE"]), env.LocalWorldSize);
        Assert.Equal(variables["MASTER_ADDR"], env.MasterAddr);
        Assert.Equal(int.Parse(variables["MASTER_PORT"]), env.MasterPort);
    }

    [Fact]
    public void ChildVariablesReadBackTheSameEnvironment()
    {
        var env = Parse(RandomVariables()) with { MasterAddr = "node-07.cluster" };
        var variables = env.ToVariables();
        Assert.Equal(["LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"], variables.Keys.Order());
        Assert.Equal(env, LaunchEnvironment.FromVariables(name => variables.GetValueOrDefault(name)));
    }

    [Fact]
    public void LocalWorldSizeDefaultsToWorldSize()
    {
        var variables = RandomVariables();
        variables.Remove("LOCAL_WORLD_SIZE");
        variables["LOCAL_RANK"] = variables["RANK"];
        Assert.Equal(int.Parse(variables["WORLD_SIZE"]), Parse(variables).LocalWorldSize);
    }

    [Theory]
    [InlineData("RANK")]
    [InlineData("WORLD_SIZE")]
    [InlineData("LOCAL_RANK")]
    [InlineData("MASTER_ADDR")]
    [InlineData("MASTER_PORT")]
    public void MissingVariableIsNamed(string name)
    {
        var variables = RandomVariables();
        variables.Remove(name);
        Assert.Equal($"environment variable {name} is not set", ParseError(variables));
    }

    [Theory]
    [InlineData("RANK", "one")]
    [InlineData("RANK", "")]
    [InlineData("WORLD_SIZE", "4.0")]
    [InlineData("WORLD_SIZE", " 4")]
    [InlineData("LOCAL_RANK", "0x1")]
    [InlineData("LOCAL_WORLD_SIZE", "99999999999")]
    [InlineData("MASTER_PORT", "http")]
    public void MalformedIntegerIsNamedWithItsValue(string name, string value)
    {
        var variables = RandomVariables();
        variables[name] = value;
        Assert.Equal($"{name}='{value}' is not an integer", ParseError(variables));
    }

    [Theory]
    [InlineData("")]
    [InlineData("node 1")]
    [InlineData("host:29500")]
    public void MalformedMasterAddrIsNamedWithItsValue(string value)
    {
        var variables = RandomVariables();
        variables["MASTER_ADDR"] = value;
        Assert.Equal($"MASTER_ADDR='{value}' is not a host name or IP address", ParseError(variables));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(65536)]
    public void MasterPortOutOfRangeIsNamed(int port)
    {
        var variables = RandomVariables();
        variables["MASTER_PORT"] = port.ToString();
        Assert.Contains($"MASTER_PORT={port} is not a TCP port", ParseError(variables));
    }

    [Theory]
    [InlineData(4, 4)]
    [InlineData(9, 4)]
    [InlineData(-1, 4)]
    public void RankOutOfRangeNamesRankAndWorldSize(int rank, int worldSize)
    {
        var variables = RandomVariables();
        variables["RANK"] = rank.ToString();
        variables["WORLD_SIZE"] = worldSize.ToString();
        variables["LOCAL_WORLD_SIZE"] = "1";
        variables["LOCAL_RANK"] = "0";
        Assert.Equal($"RANK={rank} is out of range for WORLD_SIZE={worldSize} (expected 0 to {worldSize - 1})", ParseError(variables));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-2)]
    public void WorldSizeBelowOneIsNamed(int worldSize)
    {
        var variables = RandomVariables();
        variables["WORLD_SIZE"] = worldSize.ToString();
        Assert.Equal($"WORLD_SIZE={worldSize} must be at least 1", ParseError(variables));
    }

    [Theory]
    [InlineData(2, 2)]
    [InlineData(-1, 2)]
    public void LocalRankOutOfRangeNamesLocalRankAndLocalWorldSize(int localRank, int localWorldSize)
    {
        var variables = RandomVariables();
        variables["LOCAL_RANK"] = localRank.ToString();
        variables["LOCAL_WORLD_SIZE"] = localWorldSize.ToString();
        Assert.Equal(
            $"LOCAL_RANK={localRank} is out of range for LOCAL_WORLD_SIZE={localWorldSize} (expected 0 to {localWorldSize - 1})",
            ParseError(variables));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(65)]
    public void LocalWorldSizeOutOfRangeNamesBothSizes(int localWorldSize)
    {
        var variables = RandomVariables();
        variables["LOCAL_WORLD_SIZE"] = localWorldSize.ToString();
        Assert.StartsWith(
            $"LOCAL_WORLD_SIZE={localWorldSize} is out of range for WORLD_SIZE={variables["WORLD_SIZE"]}", ParseError(variables));
    }

    [Fact]
    public void TryReturnsNullOutsideALauncher()
    {
        var variables = RandomVariables();
        variables.Remove("RANK");
        variables.Remove("WORLD_SIZE");
        Assert.Null(LaunchEnvironment.TryFromVariables(name => variables.GetValueOrDefault(name)));
    }

    [Theory]
    [InlineData("RANK")]
    [InlineData("WORLD_SIZE")]
    public void TryStillRejectsAHalfSetEnvironment(string absent)
    {
        var variables = RandomVariables();
        variables.Remove(absent);
        var error = Assert.Throws<InvalidOperationException>(() => LaunchEnvironment.TryFromVariables(name => variables.GetValueOrDefault(name)));
        Assert.Equal($"environment variable {absent} is not set", error.Message);
    }
}
