using System.Globalization;

namespace ModelParallel.Runtime.Launch;

/// <summary>
/// The torchrun-compatible variables a launcher sets for each process: RANK, WORLD_SIZE, LOCAL_RANK,
/// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
/// </summary>
public sealed record LaunchEnvironment(int Rank, int WorldSize, int LocalRank, int LocalWorldSize, string MasterAddr, int MasterPort)
{
    private const string RankVariable = "RANK";
    private const string WorldSizeVariable = "WORLD_SIZE";
    private const string LocalRankVariable = "LOCAL_RANK";
    private const string LocalWorldSizeVariable = "LOCAL_WORLD_SIZE";
    private const string MasterAddrVariable = "MASTER_ADDR";
    private const string MasterPortVariable = "MASTER_PORT";

    /// <summary>Reads the variables of this process; throws <see cref="InvalidOperationException"/> naming
    /// the missing or malformed one. LOCAL_WORLD_SIZE defaults to WORLD_SIZE when absent.</summary>
    public static LaunchEnvironment FromEnvironment() => FromVariables(Environment.GetEnvironmentVariable);

    /// <summary>Like <see cref="FromEnvironment"/>, but null when neither RANK nor WORLD_SIZE is set
    /// (a process that was not started by a launcher).</summary>
    public static LaunchEnvironment? TryFromEnvironment() => TryFromVariables(Environment.GetEnvironmentVariable);

    /// <summary>Parses the variables returned by <paramref name="lookup"/> (null for an absent variable).</summary>
    public static LaunchEnvironment FromVariables(Func<string, string?> lookup)
    {
        ArgumentNullException.ThrowIfNull(lookup);
        int worldSize = ReadInt(lookup, WorldSizeVariable);
        if (worldSize < 1)
        {
            throw new InvalidOperationException($"{WorldSizeVariable}={worldSize} must be at least 1");
        }
        int rank = ReadInt(lookup, RankVariable);
        CheckRange(RankVariable, rank, WorldSizeVariable, worldSize);

        int localWorldSize = lookup(LocalWorldSizeVariable) is null ? worldSize : ReadInt(lookup, LocalWorldSizeVariable);
        if (localWorldSize < 1 || localWorldSize > worldSize)
        {
            throw new InvalidOperationException(
                $"{LocalWorldSizeVariable}={localWorldSize} is out of range for {WorldSizeVariable}={worldSize} (expected 1 to {worldSize})");
        }
        int localRank = ReadInt(lookup, LocalRankVariable);
        CheckRange(LocalRankVariable, localRank, LocalWorldSizeVariable, localWorldSize);

        string masterAddr = lookup(MasterAddrVariable)
            ?? throw new InvalidOperationException($"environment variable {MasterAddrVariable} is not set");
        if (Uri.CheckHostName(masterAddr) == UriHostNameType.Unknown)
        {
            throw new InvalidOperationException($"{MasterAddrVariable}='{masterAddr}' is not a host name or IP address");
        }
        int masterPort = ReadInt(lookup, MasterPortVariable);
        if (masterPort < 1 || masterPort > 65535)
        {
            throw new InvalidOperationException($"{MasterPortVariable}={masterPort} is not a TCP port (expected 1 to 65535)");
        }
        return new LaunchEnvironment(rank, worldSize, localRank, localWorldSize, masterAddr, masterPort);
    }

    /// <summary>Like <see cref="FromVariables"/>, but null when neither RANK nor WORLD_SIZE is set.</summary>
    public static LaunchEnvironment? TryFromVariables(Func<string, string?> lookup)
    {
        ArgumentNullException.ThrowIfNull(lookup);
        return lookup(RankVariable) is null && lookup(WorldSizeVariable) is null ? null : FromVariables(lookup);
    }

    /// <summary>The variables to set in a child process so that it reads back this environment.</summary>
    public IReadOnlyDictionary<string, string> ToVariables() => new Dictionary<string, string>
    {
        [RankVariable] = Rank.ToString(CultureInfo.InvariantCulture),
        [WorldSizeVariable] = WorldSize.ToString(CultureInfo.InvariantCulture),
        [LocalRankVariable] = LocalRank.ToString(CultureInfo.InvariantCulture),
        [LocalWorldSizeVariable] = LocalWorldSize.ToString(CultureInfo.InvariantCulture),
        [MasterAddrVariable] = MasterAddr,
        [MasterPortVariable] = MasterPort.ToString(CultureInfo.InvariantCulture),
    };

    private static int ReadInt(Func<string, string?> lookup, string name)
    {
        string value = lookup(name) ?? throw new InvalidOperationException($"environment variable {name} is not set");
        if (!int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int parsed))
        {
            throw new InvalidOperationException($"{name}='{value}' is not an integer");
        }
        return parsed;
    }

    private static void CheckRange(string name, int value, string sizeName, int size)
    {
        if (value < 0 || value >= size)
        {
            throw new InvalidOperationException($"{name}={value} is out of range for {sizeName}={size} (expected 0 to {size - 1})");
        }
    }
}
