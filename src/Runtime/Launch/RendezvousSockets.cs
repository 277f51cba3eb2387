using System.Net;
using System.Net.Sockets;

namespace ModelParallel.Runtime.Launch;

/// <summary>Blocking TCP helpers of the rendezvous whose every wait is bounded by a <see cref="Deadline"/>.
/// A wait that runs past its deadline throws <see cref="SocketException"/> with
/// <see cref="SocketError.TimedOut"/>.</summary>
internal static class RendezvousSockets
{
    private static readonly TimeSpan PollSlice = TimeSpan.FromSeconds(1);

    /// <summary>The address of MASTER_ADDR to use: the literal itself, else its first IPv4 address, else its first.</summary>
    public static IPAddress ResolveMaster(string masterAddr)
    {
        if (IPAddress.TryParse(masterAddr, out var literal))
        {
            return literal;
        }
        var addresses = Dns.GetHostAddresses(masterAddr);
        return addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
            ?? addresses.FirstOrDefault()
            ?? throw new SocketException((int)SocketError.HostNotFound);
    }

    /// <summary>A listener on every interface of <paramref name="family"/> at <paramref name="port"/>, with
    /// SO_REUSEADDR so that a port whose last connections are in TIME_WAIT can be listened on again at once.</summary>
    public static Socket Listen(AddressFamily family, int port)
    {
        var listener = new Socket(family, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            SetReuseAddress(listener);
            listener.Bind(new IPEndPoint(family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, port));
            listener.Listen();
            return listener;
        }
        catch
        {
            listener.Dispose();
            throw;
        }
    }

    /// <summary>Waits until <paramref name="socket"/> is ready for <paramref name="mode"/>; false when the deadline passed.
    /// Polls in slices: a single poll cannot wait longer than about 35 minutes.</summary>
    public static bool WaitReady(Socket socket, SelectMode mode, Deadline deadline)
    {
        while (!socket.Poll(deadline.RemainingAtMost(PollSlice), mode))
        {
            if (deadline.Expired)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Connects to <paramref name="endpoint"/>, giving up when the deadline passes.</summary>
    public static Socket Connect(IPEndPoint endpoint, Deadline deadline)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            // A non-blocking connect bounded by poll: a blocking one may wait minutes for an unreachable host.
            socket.Blocking = false;
            try
            {
                socket.Connect(endpoint);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
            {
                if (!WaitReady(socket, SelectMode.SelectWrite, deadline))
                {
                    throw new SocketException((int)SocketError.TimedOut);
                }
                var error = (SocketError)(int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error)!;
                if (error != SocketError.Success)
                {
                    throw new SocketException((int)error);
                }
            }
            socket.Blocking = true;
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Fills <paramref name="buffer"/>; <see cref="EndOfStreamException"/> when the other side closes first.</summary>
    public static void ReceiveExactly(Socket socket, Span<byte> buffer, Deadline deadline)
    {
        while (!buffer.IsEmpty)
        {
            if (!WaitReady(socket, SelectMode.SelectRead, deadline))
            {
                throw new SocketException((int)SocketError.TimedOut);
            }
            int received = socket.Receive(buffer);
            if (received == 0)
            {
                throw new EndOfStreamException("the connection was closed by the other side");
            }
            buffer = buffer[received..];
        }
    }

    /// <summary>Sends all of <paramref name="bytes"/>, waiting at most <paramref name="timeout"/> for buffer space.</summary>
    public static void SendAll(Socket socket, ReadOnlySpan<byte> bytes, TimeSpan timeout)
    {
        socket.SendTimeout = (int)Math.Clamp(timeout.TotalMilliseconds, 1, int.MaxValue);
        while (!bytes.IsEmpty)
        {
            bytes = bytes[socket.Send(bytes)..];
        }
    }

    private static void SetReuseAddress(Socket socket)
    {
        // Set SO_REUSEADDR alone: SocketOptionName.ReuseAddress also sets SO_REUSEPORT on Linux, which would
        // let a second listener share the port and split the connections between two rendezvous.
        // Other systems keep their default.
        if (OperatingSystem.IsLinux())
        {
            const int SolSocket = 1, SoReuseAddr = 2;
            socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
        }
        else if (OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD())
        {
            const int SolSocket = 0xffff, SoReuseAddr = 4;
            socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
        }
    }
}
