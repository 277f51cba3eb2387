using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Numerics.Tensors;

namespace ModelParallel.Runtime.SafeTensors;

/// <summary>
/// One safetensors file, opened read-only and memory-mapped: 8 bytes of little-endian header length N, N bytes of
/// UTF-8 JSON header, then the data region. The header is validated when the file opens (see
/// <see cref="SafeTensorsHeader"/>); reads convert straight from the mapped bytes, so the file is never copied into a
/// managed array. Reads from several threads at once are safe; disposing while reads are in flight is not.
/// </summary>
public sealed unsafe class SafeTensorsFile : ITensorReader
{
    private readonly Dictionary<string, SafeTensorInfo> _byName;
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _data;
    private int _disposed;

    private SafeTensorsFile(string path, SafeTensorsHeader header, long dataOffset, MemoryMappedFile map,
        MemoryMappedViewAccessor view, byte* data)
    {
        Path = path;
        Metadata = header.Metadata;
        Tensors = header.Tensors;
        DataOffset = dataOffset;
        _byName = header.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        Names = header.Tensors.Select(t => t.Name).ToArray();
        _map = map;
        _view = view;
        _data = data;
    }

    public string Path { get; }

    /// <summary>The header's "__metadata__" (empty when there is none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Every tensor, in data-offset order.</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }

    /// <summary>Where the data region starts in the file: 8 + header length.</summary>
    public long DataOffset { get; }

    /// <summary>Every tensor name, in data-offset order.</summary>
    public IReadOnlyCollection<string> Names { get; }

    /// <summary>Opens and validates <paramref name="path"/>; a malformed file is a <see cref="SafeTensorsException"/>
    /// naming it, the tensor where there is one, and the numbers.</summary>
    public static SafeTensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.None);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SafeTensorsException(path, null, $"cannot open: {e.Message}", e);
        }
        try
        {
            long length = stream.Length;
            if (length < 8)
            {
                throw new SafeTensorsException(path, null, $"the file is {length} bytes, shorter than the 8-byte header length");
            }
            Span<byte> prefix = stackalloc byte[8];
            stream.ReadExactly(prefix);
            ulong headerBytes = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerBytes > SafeTensorsHeader.MaxHeaderBytes)
            {
                throw new SafeTensorsException(path, null,
                    $"header length {headerBytes} is absurd (more than {SafeTensorsHeader.MaxHeaderBytes} bytes); the file is {length} bytes");
            }
            if ((long)headerBytes > length - 8)
            {
                throw new SafeTensorsException(path, null,
                    $"header length {headerBytes} is larger than the {length - 8} bytes after the length");
            }
            var json = new byte[headerBytes];
            stream.ReadExactly(json);
            long dataOffset = 8 + (long)headerBytes;
            var header = SafeTensorsHeader.Parse(path, json, length - dataOffset);

            // The file is at least 8 bytes here, so it can be mapped even when the data region is empty.
            var map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            MemoryMappedViewAccessor? view = null;
            bool acquired = false;
            try
            {
                view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
                byte* basePointer = null;
                view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
                acquired = true;
                return new SafeTensorsFile(path, header, dataOffset, map, view, basePointer + view.PointerOffset + dataOffset);
            }
            catch
            {
                if (acquired)
                {
                    view!.SafeMemoryMappedViewHandle.ReleasePointer();
                }
                view?.Dispose();
                map.Dispose();
                throw;
            }
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public SafeTensorInfo Info(string name) =>
        _byName.TryGetValue(name, out var info) ? info
        : throw new SafeTensorsException(Path, name, $"no such tensor in this file ({_byName.Count} tensors)");

    public void Read(string name, long elementOffset, Span<double> destination)
    {
        var info = Slice(name, elementOffset, destination.Length, out byte* source);
        int n = destination.Length;
        switch (info.DType)
        {
            case SafeTensorsDType.F64:
                new ReadOnlySpan<double>(source, n).CopyTo(destination);
                break;
            case SafeTensorsDType.F32:
                TensorPrimitives.ConvertChecked<float, double>(new ReadOnlySpan<float>(source, n), destination);
                break;
            case SafeTensorsDType.BF16:
                SafeTensorsConvert.BFloat16ToDouble(new ReadOnlySpan<ushort>(source, n), destination);
                break;
            case SafeTensorsDType.F16:
                SafeTensorsConvert.HalfToDouble(new ReadOnlySpan<Half>(source, n), destination);
                break;
            case SafeTensorsDType.I32:
                TensorPrimitives.ConvertChecked<int, double>(new ReadOnlySpan<int>(source, n), destination);
                break;
            case SafeTensorsDType.I64:
                TensorPrimitives.ConvertTruncating<long, double>(new ReadOnlySpan<long>(source, n), destination);
                break;
            default:
                throw Unsupported(info, "double");
        }
    }

    public void Read(string name, long elementOffset, Span<float> destination)
    {
        var info = Slice(name, elementOffset, destination.Length, out byte* source);
        int n = destination.Length;
        switch (info.DType)
        {
            case SafeTensorsDType.F64:
                TensorPrimitives.ConvertTruncating<double, float>(new ReadOnlySpan<double>(source, n), destination);
                break;
            case SafeTensorsDType.F32:
                new ReadOnlySpan<float>(source, n).CopyTo(destination);
                break;
            case SafeTensorsDType.BF16:
                SafeTensorsConvert.BFloat16ToSingle(new ReadOnlySpan<ushort>(source, n), destination);
                break;
            case SafeTensorsDType.F16:
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(source, n), destination);
                break;
            default:
                throw Unsupported(info, "float");
        }
    }

    public void Read(string name, long elementOffset, Span<int> destination)
    {
        var info = Slice(name, elementOffset, destination.Length, out byte* source);
        int n = destination.Length;
        switch (info.DType)
        {
            case SafeTensorsDType.I32:
                new ReadOnlySpan<int>(source, n).CopyTo(destination);
                break;
            case SafeTensorsDType.I64:
                var wide = new ReadOnlySpan<long>(source, n);
                for (int i = 0; i < wide.Length; i++)
                {
                    long value = wide[i];
                    if (value is < int.MinValue or > int.MaxValue)
                    {
                        throw new SafeTensorsException(Path, name,
                            $"I64 value {value} at element {elementOffset + i} does not fit in an int");
                    }
                    destination[i] = (int)value;
                }
                break;
            default:
                throw Unsupported(info, "int");
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    /// <summary>Checks the name and element range and returns where the first element lies in the mapping.</summary>
    private SafeTensorInfo Slice(string name, long elementOffset, int length, out byte* source)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var info = Info(name);
        long count = info.Count;
        if (elementOffset < 0 || elementOffset > count || length > count - elementOffset)
        {
            throw new SafeTensorsException(Path, name,
                $"elements [{elementOffset}, {elementOffset} + {length}) are outside the tensor's {count} elements");
        }
        source = _data + info.DataStart + elementOffset * info.DType.Size();
        return info;
    }

    private SafeTensorsException Unsupported(SafeTensorInfo info, string target) =>
        new(Path, info.Name, info.DType.IsFloatingPoint()
            ? $"{info.DType.HeaderName()} is a floating-point dtype; read it as float or double, not {target}"
            : $"{info.DType.HeaderName()} is an integer dtype; read it as int or double, not {target}");

    public override string ToString() => $"{Path} ({Tensors.Count} tensors)";
}
