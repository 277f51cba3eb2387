namespace ModelParallel.Runtime.Launch;

/// <summary>
/// A small TCP rendezvous on MASTER_ADDR:MASTER_PORT: rank 0 listens, the others connect, and
/// byte payloads are exchanged (NCCL unique ids, host names). A rendezvous that does not complete
/// within the timeout throws <see cref="TimeoutException"/> naming the ranks that never arrived.
/// </summary>
public static class Rendezvous
{
    /// <summary>Every rank gets every rank's payload, in rank order.</summary>
    public static byte[][] AllGather(LaunchEnvironment env, string key, byte[] payload, TimeSpan timeout) =>
        throw new NotImplementedException();

    /// <summary>Every rank gets rank 0's payload (ignored elsewhere; may be null there).</summary>
    public static byte[] Broadcast(LaunchEnvironment env, string key, byte[]? payloadOnRank0, TimeSpan timeout) =>
        throw new NotImplementedException();
}
