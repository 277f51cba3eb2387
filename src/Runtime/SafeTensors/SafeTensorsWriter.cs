using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;

namespace ModelParallel.Runtime.SafeTensors;

/// <summary>
/// Writes safetensors files: the header lists the tensors in the order given, their data laid out back to back in
/// that order, the header padded with spaces so that the data region starts at a multiple of 8 bytes.
/// </summary>
public static class SafeTensorsWriter
{
    private const int ChunkElements = 1 << 16;

    /// <summary>
    /// Writes <paramref name="entries"/> to <paramref name="path"/> atomically: a temporary file in the same folder,
    /// flushed to disk, then renamed over <paramref name="path"/>. Doubles are converted to each entry's dtype: F32 and
    /// F16 rounded to nearest even (beyond their range to infinity, as IEEE conversion does), BF16 rounded to nearest
    /// even in one step (see <see cref="BFloat16"/>), I32 and I64 only for exact integers in range, else a
    /// <see cref="SafeTensorsException"/> naming the tensor, the value and its element index.
    /// </summary>
    public static void Write(string path, IEnumerable<SafeTensorEntry> entries, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(entries);
        var list = entries.ToList();
        byte[] header = Header(path, list, metadata);
        string full = System.IO.Path.GetFullPath(path);
        string temporary = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(full)!,
            $".{System.IO.Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
                stream.Write(prefix);
                stream.Write(header);
                byte[] buffer = ArrayPool<byte>.Shared.Rent(ChunkElements * 8);
                try
                {
                    foreach (var entry in list)
                    {
                        WriteData(path, entry, stream, buffer);
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, full, overwrite: true);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    /// <summary>
    /// Splits <paramref name="entries"/>, in order, over files "model-00001-of-0000N.safetensors" in
    /// <paramref name="folder"/> of at most <paramref name="maxShardBytes"/> bytes of tensor data each (a tensor larger
    /// than that gets a file of its own), each with metadata {"format": "pt"}, and writes
    /// "model.safetensors.index.json" ({"metadata": {"total_size": bytes}, "weight_map": {name: file}}), as
    /// transformers does. Every file is written atomically; the index is written last.
    /// </summary>
    public static void WriteSharded(string folder, IEnumerable<SafeTensorEntry> entries, long maxShardBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        var list = entries.ToList();
        string index = System.IO.Path.Combine(folder, SafeTensorsCheckpoint.IndexFileName);
        var shards = new List<List<SafeTensorEntry>> { new() };
        long shardBytes = 0;
        long totalBytes = 0;
        foreach (var entry in list)
        {
            long bytes = DataBytes(index, entry);
            if (shards[^1].Count > 0 && shardBytes + bytes > maxShardBytes)
            {
                shards.Add([]);
                shardBytes = 0;
            }
            shards[^1].Add(entry);
            shardBytes = checked(shardBytes + bytes);
            totalBytes = checked(totalBytes + bytes);
        }
        CheckUniqueNames(index, list);

        Directory.CreateDirectory(folder);
        var formatPt = new Dictionary<string, string> { ["format"] = "pt" };
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < shards.Count; i++)
        {
            string file = string.Create(CultureInfo.InvariantCulture, $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors");
            Write(System.IO.Path.Combine(folder, file), shards[i], formatPt);
            foreach (var entry in shards[i])
            {
                weightMap[entry.Name] = file;
            }
        }

        var json = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(json, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteStartObject("metadata");
            writer.WriteNumber("total_size", totalBytes);
            writer.WriteEndObject();
            writer.WriteStartObject("weight_map");
            foreach (var (name, file) in weightMap)
            {
                writer.WriteString(name, file);
            }
            writer.WriteEndObject();
            writer.WriteEndObject();
        }
        string temporary = index + $".{Guid.NewGuid():N}.tmp";
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(json.WrittenSpan);
                stream.WriteByte((byte)'\n');
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, index, overwrite: true);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    /// <summary>The JSON header, padded with spaces to a multiple of 8 bytes; checks names, shapes and data lengths.</summary>
    private static byte[] Header(string path, List<SafeTensorEntry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        CheckUniqueNames(path, entries);
        var json = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(json))
        {
            writer.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata)
                {
                    writer.WriteString(key, value);
                }
                writer.WriteEndObject();
            }
            long offset = 0;
            foreach (var entry in entries)
            {
                long end = checked(offset + DataBytes(path, entry));
                writer.WriteStartObject(entry.Name);
                writer.WriteString("dtype", entry.DType.HeaderName());
                writer.WriteStartArray("shape");
                foreach (long dim in entry.Shape)
                {
                    writer.WriteNumberValue(dim);
                }
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(end);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset = end;
            }
            writer.WriteEndObject();
        }
        int padded = checked((json.WrittenCount + 7) / 8 * 8);
        var header = new byte[padded];
        json.WrittenSpan.CopyTo(header);
        header.AsSpan(json.WrittenCount).Fill((byte)' ');
        return header;
    }

    private static void CheckUniqueNames(string path, List<SafeTensorEntry> entries)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            ArgumentNullException.ThrowIfNull(entry);
            if (string.IsNullOrEmpty(entry.Name) || entry.Name == "__metadata__")
            {
                throw new SafeTensorsException(path, entry.Name, "a tensor name must be non-empty and not \"__metadata__\"");
            }
            if (!names.Add(entry.Name))
            {
                throw new SafeTensorsException(path, entry.Name, "the name is given twice");
            }
        }
    }

    /// <summary>Bytes of the entry's data, from its shape and dtype.</summary>
    private static long DataBytes(string path, SafeTensorEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry.Shape);
        if (!Enum.IsDefined(entry.DType))
        {
            throw new SafeTensorsException(path, entry.Name, $"unknown dtype {entry.DType}");
        }
        long count;
        long bytes;
        try
        {
            foreach (long dim in entry.Shape)
            {
                if (dim < 0)
                {
                    throw new SafeTensorsException(path, entry.Name, $"shape [{string.Join(", ", entry.Shape)}] has a negative dimension");
                }
            }
            count = SafeTensorInfo.ElementCount(entry.Shape);
            bytes = checked(count * entry.DType.Size());
        }
        catch (OverflowException)
        {
            throw new SafeTensorsException(path, entry.Name, $"shape [{string.Join(", ", entry.Shape)}] has more bytes than a long holds");
        }
        return bytes;
    }

    /// <summary>Loads the entry's values, checks their count against its shape and writes them.</summary>
    private static void WriteData(string path, SafeTensorEntry entry, Stream stream, byte[] buffer)
    {
        var memory = entry.Load();
        long count = SafeTensorInfo.ElementCount(entry.Shape);
        if (count != memory.Length)
        {
            throw new SafeTensorsException(path, entry.Name,
                $"shape [{string.Join(", ", entry.Shape)}] is {count} elements, but the data holds {memory.Length}");
        }
        var data = memory.Span;
        int size = entry.DType.Size();
        for (int start = 0; start < data.Length; start += ChunkElements)
        {
            var chunk = data.Slice(start, Math.Min(ChunkElements, data.Length - start));
            var bytes = buffer.AsSpan(0, chunk.Length * size);
            for (int i = 0; i < chunk.Length; i++)
            {
                double value = chunk[i];
                var slot = bytes.Slice(i * size, size);
                switch (entry.DType)
                {
                    case SafeTensorsDType.F64:
                        BinaryPrimitives.WriteDoubleLittleEndian(slot, value);
                        break;
                    case SafeTensorsDType.F32:
                        BinaryPrimitives.WriteSingleLittleEndian(slot, (float)value);
                        break;
                    case SafeTensorsDType.BF16:
                        BinaryPrimitives.WriteUInt16LittleEndian(slot, SafeTensorsConvert.DoubleToBFloat16(value).Bits);
                        break;
                    case SafeTensorsDType.F16:
                        BinaryPrimitives.WriteHalfLittleEndian(slot, (Half)value);
                        break;
                    case SafeTensorsDType.I32:
                        if (!(value >= int.MinValue && value <= int.MaxValue && Math.Floor(value) == value))
                        {
                            throw NotAnInteger(path, entry, start + i, value, "I32");
                        }
                        BinaryPrimitives.WriteInt32LittleEndian(slot, (int)value);
                        break;
                    case SafeTensorsDType.I64:
                        // 2^63 is a double but not a long: the upper bound is exclusive.
                        if (!(value >= -9223372036854775808.0 && value < 9223372036854775808.0 && Math.Floor(value) == value))
                        {
                            throw NotAnInteger(path, entry, start + i, value, "I64");
                        }
                        BinaryPrimitives.WriteInt64LittleEndian(slot, (long)value);
                        break;
                }
            }
            stream.Write(bytes);
        }
    }

    private static SafeTensorsException NotAnInteger(string path, SafeTensorEntry entry, int element, double value, string dtype) =>
        new(path, entry.Name, $"element {element} is {value.ToString("R", CultureInfo.InvariantCulture)}, not an integer in the range of {dtype}");

    private static void TryDelete(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
