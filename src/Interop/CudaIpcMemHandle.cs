using System.Runtime.CompilerServices;

namespace ModelParallel.Interop;

/// <summary>cudaIpcMemHandle_t: 64 opaque bytes naming a device allocation to other processes.</summary>
internal struct CudaIpcMemHandle
{
    public const int Size = 64;

    private Bytes _bytes;

    /// <summary>The handle as bytes, to send to another process.</summary>
    public readonly byte[] ToArray() => ((ReadOnlySpan<byte>)_bytes).ToArray();

    /// <summary>A handle from the bytes another process sent (exactly <see cref="Size"/> bytes).</summary>
    public static CudaIpcMemHandle FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
        {
            throw new ArgumentException($"an IPC memory handle has {Size} bytes, got {bytes.Length}", nameof(bytes));
        }
        var handle = default(CudaIpcMemHandle);
        bytes.CopyTo(handle._bytes);
        return handle;
    }

    [InlineArray(Size)]
    private struct Bytes
    {
        private byte _first;
    }
}
