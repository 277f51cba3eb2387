namespace ModelParallel.Runtime.Launch;

/// <summary>
/// The torchrun-compatible variables a launcher sets for each process: RANK, WORLD_SIZE, LOCAL_RANK,
/// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
/// </summary>
public sealed record LaunchEnvironment(int Rank, int WorldSize, int LocalRank, int LocalWorldSize, string MasterAddr, int MasterPort)
{
    /// <summary>Reads the variables of this process; throws naming the missing or malformed one.</summary>
    public static LaunchEnvironment FromEnvironment() => throw new NotImplementedException();
}
