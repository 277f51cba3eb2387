namespace ModelParallel.Runtime.Launch;

/// <summary>
/// What <see cref="Launcher.Run"/> starts: <see cref="NprocPerNode"/> processes of <see cref="Program"/> with
/// <see cref="Arguments"/> on node <see cref="NodeRank"/> of <see cref="Nnodes"/>, with global ranks
/// NodeRank * NprocPerNode + local rank. MASTER_ADDR defaults to 127.0.0.1 and MASTER_PORT to a free port
/// of this machine; both are required when there is more than one node.
/// </summary>
public sealed record LaunchOptions(int NprocPerNode, string Program, IReadOnlyList<string> Arguments)
{
    public int Nnodes { get; init; } = 1;

    public int NodeRank { get; init; }

    public string? MasterAddr { get; init; }

    public int? MasterPort { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option and its value.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Program);
        ArgumentNullException.ThrowIfNull(Arguments);
        if (NprocPerNode < 1)
        {
            throw new ArgumentException($"nproc-per-node must be at least 1, got {NprocPerNode}");
        }
        if (Nnodes < 1)
        {
            throw new ArgumentException($"nnodes must be at least 1, got {Nnodes}");
        }
        if (NodeRank < 0 || NodeRank >= Nnodes)
        {
            throw new ArgumentException($"node-rank {NodeRank} is out of range for nnodes {Nnodes} (expected 0 to {Nnodes - 1})");
        }
        if (MasterPort is < 1 or > 65535)
        {
            throw new ArgumentException($"master-port {MasterPort} is not a TCP port (expected 1 to 65535)");
        }
        if (MasterAddr is not null && Uri.CheckHostName(MasterAddr) == UriHostNameType.Unknown)
        {
            throw new ArgumentException($"master-addr '{MasterAddr}' is not a host name or IP address");
        }
        if (Nnodes > 1 && (MasterAddr is null || MasterPort is null))
        {
            throw new ArgumentException($"master-addr and master-port are required when nnodes is {Nnodes}: every node must use the same ones");
        }
        if (string.IsNullOrWhiteSpace(Program))
        {
            throw new ArgumentException("the program to launch is missing");
        }
    }
}
