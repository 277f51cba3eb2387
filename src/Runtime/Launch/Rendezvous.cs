using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ModelParallel.Runtime.Launch;

/// <summary>
/// A small TCP rendezvous on MASTER_ADDR:MASTER_PORT: rank 0 listens, the others connect, and
/// byte payloads are exchanged (NCCL unique ids, host names). A rendezvous that does not complete
/// within the timeout throws <see cref="TimeoutException"/> naming the ranks that never arrived.
/// </summary>
/// <remarks>
/// Each call is one round: rank 0 opens its listener (SO_REUSEADDR), collects one hello per peer, checks
/// that every peer has the same key, world size and operation, closes the listener and answers every
/// peer; the peers connect with retries until the timeout. Calls in sequence on one port therefore
/// work, and the key tells apart calls that got out of step: a mismatch fails on rank 0 and on the peer
/// with <see cref="InvalidOperationException"/> naming both sides, as does a rank that arrives twice.
/// On timeout rank 0 names the missing ranks (and tells the peers that arrived); a peer that never
/// hears from rank 0 says that rank 0 at MASTER_ADDR:MASTER_PORT never answered.
/// A world of one rank uses no socket.
/// </remarks>
public static class Rendezvous
{
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan LastRetryDelay = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MinimumSendTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Every rank gets every rank's payload, in rank order.</summary>
    public static byte[][] AllGather(LaunchEnvironment env, string key, byte[] payload, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(payload);
        return Exchange(env, RendezvousOperation.AllGather, key, payload, timeout);
    }

    /// <summary>Every rank gets rank 0's payload (ignored elsewhere; may be null there).</summary>
    public static byte[] Broadcast(LaunchEnvironment env, string key, byte[]? payloadOnRank0, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(env);
        if (env.Rank == 0)
        {
            ArgumentNullException.ThrowIfNull(payloadOnRank0);
        }
        return Exchange(env, RendezvousOperation.Broadcast, key, env.Rank == 0 ? payloadOnRank0! : [], timeout)[0];
    }

    private static byte[][] Exchange(LaunchEnvironment env, RendezvousOperation operation, string key, byte[] payload, TimeSpan timeout)
    {
        Validate(env, key, payload, timeout);
        if (env.WorldSize == 1)
        {
            return [payload];
        }
        var hello = new RendezvousHello(operation, env.Rank, env.WorldSize, key, payload);
        return env.Rank == 0 ? Serve(env, hello, new Deadline(timeout)) : Join(env, hello, new Deadline(timeout));
    }

    private static void Validate(LaunchEnvironment env, string key, byte[] payload, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(key);
        if (env.WorldSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(env), env.WorldSize, "world size must be at least 1");
        }
        if (env.Rank < 0 || env.Rank >= env.WorldSize)
        {
            throw new ArgumentOutOfRangeException(nameof(env), env.Rank, $"rank {env.Rank} is out of range for world size {env.WorldSize}");
        }
        if (env.WorldSize > 1 && (env.MasterPort < 1 || env.MasterPort > 65535))
        {
            throw new ArgumentOutOfRangeException(nameof(env), env.MasterPort, $"master port {env.MasterPort} is not a TCP port");
        }
        if (Encoding.UTF8.GetByteCount(key) > RendezvousMessages.MaxKeyBytes)
        {
            throw new ArgumentException($"rendezvous key of {Encoding.UTF8.GetByteCount(key)} UTF-8 bytes is longer than {RendezvousMessages.MaxKeyBytes}", nameof(key));
        }
        if (payload.Length > RendezvousMessages.MaxPayloadBytes)
        {
            throw new ArgumentException($"rendezvous payload of {payload.Length} bytes is larger than {RendezvousMessages.MaxPayloadBytes}", nameof(payload));
        }
        if (timeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "timeout must be positive");
        }
    }

    /// <summary>Rank 0: collects every peer's hello, checks it, and answers everyone.</summary>
    private static byte[][] Serve(LaunchEnvironment env, RendezvousHello own, Deadline deadline)
    {
        Socket listener;
        try
        {
            listener = RendezvousSockets.Listen(RendezvousSockets.ResolveMaster(env.MasterAddr).AddressFamily, env.MasterPort);
        }
        catch (SocketException e)
        {
            throw new IOException($"rendezvous '{own.Key}': rank 0 cannot listen on port {env.MasterPort}: {e.Message}", e);
        }
        var peers = new SortedDictionary<int, (Socket Socket, RendezvousHello Hello)>();
        try
        {
            using (listener)
            {
                while (peers.Count < env.WorldSize - 1)
                {
                    if (!RendezvousSockets.WaitReady(listener, SelectMode.SelectRead, deadline))
                    {
                        string message = TimeoutMessage(env, own.Key, deadline.Timeout, peers.Keys);
                        SendFailure(peers.Values.Select(p => p.Socket), RendezvousStatus.TimedOut, $"rank 0 at {Where(env)}: {message}");
                        throw new TimeoutException(message);
                    }
                    var socket = listener.Accept();
                    RendezvousHello hello;
                    try
                    {
                        hello = RendezvousMessages.ReadHello(socket, deadline);
                    }
                    catch (Exception e) when (e is SocketException or IOException or InvalidDataException)
                    {
                        // Not a peer (or a peer that went away before saying who it is): whoever it was
                        // retries if it is a peer; the deadline bounds the wait for the missing ranks.
                        socket.Dispose();
                        continue;
                    }
                    string? problem = Mismatch(env, own, hello, peers.ContainsKey(hello.Rank));
                    if (problem is not null)
                    {
                        SendFailure([socket], RendezvousStatus.Failed, problem);
                        socket.Dispose();
                        SendFailure(peers.Values.Select(p => p.Socket), RendezvousStatus.Failed, $"rendezvous failed on rank 0: {problem}");
                        throw new InvalidOperationException(problem);
                    }
                    peers.Add(hello.Rank, (socket, hello));
                }
            }
            // The listener is closed before anyone is answered, so a peer's connection for the next round
            // cannot wait unseen in this round's backlog: it is refused and retried until rank 0 listens again.
            byte[][] result = own.Operation == RendezvousOperation.Broadcast
                ? [own.Payload]
                : [own.Payload, .. peers.Values.Select(p => p.Hello.Payload)];
            Answer(own.Key, peers, RendezvousMessages.EncodeAnswer(result), deadline);
            return result;
        }
        finally
        {
            foreach (var (socket, _) in peers.Values)
            {
                socket.Dispose();
            }
        }
    }

    private static string? Mismatch(LaunchEnvironment env, RendezvousHello own, RendezvousHello hello, bool duplicate)
    {
        if (hello.Key != own.Key || hello.WorldSize != own.WorldSize || hello.Operation != own.Operation)
        {
            return $"rendezvous mismatch on {Where(env)}: rank 0 has key '{own.Key}', world size {own.WorldSize}, {own.Operation}; "
                + $"rank {hello.Rank} sent key '{hello.Key}', world size {hello.WorldSize}, {hello.Operation}";
        }
        if (hello.Rank < 1 || hello.Rank >= own.WorldSize)
        {
            return $"rendezvous '{own.Key}' on {Where(env)}: a peer claims rank {hello.Rank}, which is not a peer rank of world size {own.WorldSize}";
        }
        return duplicate
            ? $"rendezvous '{own.Key}' on {Where(env)}: rank {hello.Rank} arrived twice (two processes claim rank {hello.Rank})"
            : null;
    }

    private static void Answer(string key, SortedDictionary<int, (Socket Socket, RendezvousHello Hello)> peers, byte[] answer, Deadline deadline)
    {
        var sendTimeout = deadline.Remaining > MinimumSendTimeout ? deadline.Remaining : MinimumSendTimeout;
        var undelivered = new List<string>();
        foreach (var (rank, (socket, _)) in peers)
        {
            try
            {
                RendezvousSockets.SendAll(socket, answer, sendTimeout);
                socket.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException e)
            {
                undelivered.Add($"rank {rank} ({e.SocketErrorCode})");
            }
        }
        if (undelivered.Count > 0)
        {
            throw new IOException($"rendezvous '{key}': rank 0 could not send the answer to {string.Join(", ", undelivered)}");
        }
    }

    private static void SendFailure(IEnumerable<Socket> sockets, RendezvousStatus status, string message)
    {
        byte[] failure = RendezvousMessages.EncodeFailure(status, message);
        foreach (var socket in sockets)
        {
            try
            {
                RendezvousSockets.SendAll(socket, failure, MinimumSendTimeout);
            }
            catch (SocketException)
            {
                // That peer is gone; it cannot be told, and rank 0 reports the failure itself.
            }
        }
    }

    /// <summary>A peer: connects to rank 0 (retrying until the deadline), sends its hello and reads the answer.</summary>
    private static byte[][] Join(LaunchEnvironment env, RendezvousHello hello, Deadline deadline)
    {
        byte[] request = RendezvousMessages.EncodeHello(hello);
        var delay = FirstRetryDelay;
        Exception? lastError = null;
        while (!deadline.Expired)
        {
            try
            {
                var endpoint = new IPEndPoint(RendezvousSockets.ResolveMaster(env.MasterAddr), env.MasterPort);
                using var socket = RendezvousSockets.Connect(endpoint, deadline);
                RendezvousSockets.SendAll(socket, request, deadline.Remaining);
                return Interpret(env, hello, RendezvousMessages.ReadReply(socket, deadline));
            }
            catch (Exception e) when (e is SocketException or IOException)
            {
                // Rank 0 is not listening yet, or it closed the listener of the previous round before
                // this connection was accepted: try again.
                lastError = e;
            }
            Thread.Sleep(deadline.RemainingAtMost(delay));
            delay = delay * 2 < LastRetryDelay ? delay * 2 : LastRetryDelay;
        }
        throw new TimeoutException(
            $"rendezvous '{hello.Key}' (rank {hello.Rank} of {hello.WorldSize}): rank 0 at {Where(env)} never answered within "
            + $"{Seconds(deadline.Timeout)}" + (lastError is null ? "" : $" (last error: {lastError.Message})"));
    }

    private static byte[][] Interpret(LaunchEnvironment env, RendezvousHello hello, RendezvousReply reply)
    {
        int expected = hello.Operation == RendezvousOperation.Broadcast ? 1 : env.WorldSize;
        return reply.Status switch
        {
            RendezvousStatus.Ok when reply.Payloads.Length == expected => reply.Payloads,
            RendezvousStatus.Ok => throw new InvalidDataException(
                $"rendezvous '{hello.Key}': rank 0 answered {reply.Payloads.Length} payloads, expected {expected}"),
            RendezvousStatus.TimedOut => throw new TimeoutException(reply.Message),
            _ => throw new InvalidOperationException(reply.Message),
        };
    }

    private static string TimeoutMessage(LaunchEnvironment env, string key, TimeSpan timeout, IEnumerable<int> arrivedPeers)
    {
        var arrived = new SortedSet<int>(arrivedPeers) { 0 };
        var missing = Enumerable.Range(0, env.WorldSize).Where(r => !arrived.Contains(r)).ToList();
        return $"rendezvous '{key}' on {Where(env)} timed out after {Seconds(timeout)}: "
            + $"{(missing.Count == 1 ? "rank" : "ranks")} {string.Join(", ", missing)} never arrived (arrived: {string.Join(", ", arrived)})";
    }

    private static string Where(LaunchEnvironment env) => $"{env.MasterAddr}:{env.MasterPort}";

    private static string Seconds(TimeSpan timeout) => timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + " s";
}
