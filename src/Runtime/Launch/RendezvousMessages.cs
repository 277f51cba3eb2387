using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace ModelParallel.Runtime.Launch;

internal enum RendezvousOperation : byte
{
    AllGather = 1,
    Broadcast = 2,
}

internal enum RendezvousStatus : byte
{
    Ok = 0,
    Failed = 1,
    TimedOut = 2,
}

/// <summary>What a peer sends rank 0: who it is, what it joins and its payload.</summary>
internal sealed record RendezvousHello(RendezvousOperation Operation, int Rank, int WorldSize, string Key, byte[] Payload);

/// <summary>What rank 0 answers: the payloads (Ok) or why the rendezvous failed (Failed, TimedOut).</summary>
internal sealed record RendezvousReply(RendezvousStatus Status, byte[][] Payloads, string Message);

/// <summary>
/// The wire format, little-endian, every variable part length-prefixed with an int32.
/// Hello: magic, operation (byte), rank, world size, key (UTF-8), payload.
/// Reply: magic, status (byte), then for Ok a count and that many payloads, else a message (UTF-8).
/// </summary>
internal static class RendezvousMessages
{
    public const int MaxKeyBytes = 1024;
    public const int MaxPayloadBytes = 16 << 20;
    private const int MaxMessageBytes = 64 << 10;
    private const uint Magic = 0x5A52504D; // "MPRZ"

    public static byte[] EncodeHello(RendezvousHello hello)
    {
        using var stream = new MemoryStream();
        using var writer = new BinaryWriter(stream);
        writer.Write(Magic);
        writer.Write((byte)hello.Operation);
        writer.Write(hello.Rank);
        writer.Write(hello.WorldSize);
        WriteBytes(writer, Encoding.UTF8.GetBytes(hello.Key));
        WriteBytes(writer, hello.Payload);
        writer.Flush();
        return stream.ToArray();
    }

    public static byte[] EncodeAnswer(IReadOnlyList<byte[]> payloads)
    {
        using var stream = new MemoryStream();
        using var writer = new BinaryWriter(stream);
        writer.Write(Magic);
        writer.Write((byte)RendezvousStatus.Ok);
        writer.Write(payloads.Count);
        foreach (var payload in payloads)
        {
            WriteBytes(writer, payload);
        }
        writer.Flush();
        return stream.ToArray();
    }

    public static byte[] EncodeFailure(RendezvousStatus status, string message)
    {
        using var stream = new MemoryStream();
        using var writer = new BinaryWriter(stream);
        writer.Write(Magic);
        writer.Write((byte)status);
        WriteBytes(writer, Encoding.UTF8.GetBytes(message));
        writer.Flush();
        return stream.ToArray();
    }

    /// <summary>Reads a hello; <see cref="InvalidDataException"/> when the other side does not speak the protocol.</summary>
    public static RendezvousHello ReadHello(Socket socket, Deadline deadline)
    {
        ReadMagic(socket, deadline);
        var operation = (RendezvousOperation)ReadByte(socket, deadline);
        if (!Enum.IsDefined(operation))
        {
            throw new InvalidDataException($"unknown rendezvous operation {(byte)operation}");
        }
        int rank = ReadInt32(socket, deadline);
        int worldSize = ReadInt32(socket, deadline);
        string key = Encoding.UTF8.GetString(ReadBytes(socket, MaxKeyBytes, deadline));
        byte[] payload = ReadBytes(socket, MaxPayloadBytes, deadline);
        return new RendezvousHello(operation, rank, worldSize, key, payload);
    }

    /// <summary>Reads rank 0's reply; <see cref="InvalidDataException"/> when it is not one.</summary>
    public static RendezvousReply ReadReply(Socket socket, Deadline deadline)
    {
        ReadMagic(socket, deadline);
        var status = (RendezvousStatus)ReadByte(socket, deadline);
        if (status != RendezvousStatus.Ok)
        {
            if (!Enum.IsDefined(status))
            {
                throw new InvalidDataException($"unknown rendezvous status {(byte)status}");
            }
            return new RendezvousReply(status, [], Encoding.UTF8.GetString(ReadBytes(socket, MaxMessageBytes, deadline)));
        }
        int count = ReadInt32(socket, deadline);
        if (count < 0)
        {
            throw new InvalidDataException($"rendezvous answer announces {count} payloads");
        }
        var payloads = new byte[count][];
        for (int i = 0; i < count; i++)
        {
            payloads[i] = ReadBytes(socket, MaxPayloadBytes, deadline);
        }
        return new RendezvousReply(status, payloads, "");
    }

    private static void WriteBytes(BinaryWriter writer, byte[] bytes)
    {
        writer.Write(bytes.Length);
        writer.Write(bytes);
    }

    private static void ReadMagic(Socket socket, Deadline deadline)
    {
        Span<byte> bytes = stackalloc byte[4];
        RendezvousSockets.ReceiveExactly(socket, bytes, deadline);
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        if (magic != Magic)
        {
            throw new InvalidDataException($"the other side does not speak the rendezvous protocol (magic 0x{magic:X8})");
        }
    }

    private static byte ReadByte(Socket socket, Deadline deadline)
    {
        Span<byte> bytes = stackalloc byte[1];
        RendezvousSockets.ReceiveExactly(socket, bytes, deadline);
        return bytes[0];
    }

    private static int ReadInt32(Socket socket, Deadline deadline)
    {
        Span<byte> bytes = stackalloc byte[4];
        RendezvousSockets.ReceiveExactly(socket, bytes, deadline);
        return BinaryPrimitives.ReadInt32LittleEndian(bytes);
    }

    private static byte[] ReadBytes(Socket socket, int maxLength, Deadline deadline)
    {
        int length = ReadInt32(socket, deadline);
        if (length < 0 || length > maxLength)
        {
            throw new InvalidDataException($"rendezvous field of {length} bytes (at most {maxLength} allowed)");
        }
        var bytes = new byte[length];
        RendezvousSockets.ReceiveExactly(socket, bytes, deadline);
        return bytes;
    }
}
