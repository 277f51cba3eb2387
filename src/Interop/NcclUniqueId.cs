using System.Runtime.CompilerServices;

namespace ModelParallel.Interop;

/// <summary>ncclUniqueId: 128 opaque bytes that every rank of a new communicator must share.</summary>
internal struct NcclUniqueId
{
    public const int Size = 128;

    private Bytes _bytes;

    public readonly byte[] ToArray() => ((ReadOnlySpan<byte>)_bytes).ToArray();

    /// <summary>The id from the bytes rank 0 sent (exactly <see cref="Size"/> bytes).</summary>
    public static NcclUniqueId FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
        {
            throw new ArgumentException($"an NCCL unique id has {Size} bytes, got {bytes.Length}", nameof(bytes));
        }
        var id = default(NcclUniqueId);
        bytes.CopyTo(id._bytes);
        return id;
    }

    [InlineArray(Size)]
    private struct Bytes
    {
        private byte _first;
    }
}
