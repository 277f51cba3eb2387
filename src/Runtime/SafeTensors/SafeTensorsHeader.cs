using System.Text.Json;
using System.Text.Unicode;

namespace ModelParallel.Runtime.SafeTensors;

/// <summary>
/// The parsed and validated JSON header of one safetensors file: its tensors in data-offset order and its
/// optional string-to-string "__metadata__". Every check names the file, the tensor where there is one, and the numbers.
/// </summary>
internal sealed class SafeTensorsHeader
{
    /// <summary>Headers above this are refused as absurd rather than read (transformers' files stay far below it).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private SafeTensorsHeader(IReadOnlyList<SafeTensorInfo> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Tensors = tensors;
        Metadata = metadata;
    }

    public IReadOnlyList<SafeTensorInfo> Tensors { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Parses <paramref name="json"/> (the header bytes) for a file whose data region is <paramref name="dataBytes"/> long.</summary>
    public static SafeTensorsHeader Parse(string path, ReadOnlySpan<byte> json, long dataBytes)
    {
        if (!Utf8.IsValid(json))
        {
            throw new SafeTensorsException(path, null, $"the {json.Length}-byte header is not valid UTF-8");
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new SafeTensorsException(path, null, $"the {json.Length}-byte header is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new SafeTensorsException(path, null, $"the header is a JSON {root.ValueKind}, not an object");
            }
            var tensors = new List<SafeTensorInfo>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            IReadOnlyDictionary<string, string> metadata = new Dictionary<string, string>();
            bool sawMetadata = false;
            foreach (var property in root.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    if (sawMetadata)
                    {
                        throw new SafeTensorsException(path, null, $"\"{MetadataKey}\" appears twice in the header");
                    }
                    sawMetadata = true;
                    metadata = ParseMetadata(path, property.Value);
                    continue;
                }
                if (!seen.Add(property.Name))
                {
                    throw new SafeTensorsException(path, property.Name, "the name appears twice in the header");
                }
                tensors.Add(ParseEntry(path, property.Name, property.Value, dataBytes));
            }
            tensors.Sort((a, b) => a.DataStart != b.DataStart ? a.DataStart.CompareTo(b.DataStart)
                : a.DataEnd != b.DataEnd ? a.DataEnd.CompareTo(b.DataEnd)
                : string.CompareOrdinal(a.Name, b.Name));
            CheckNoOverlap(path, tensors);
            return new SafeTensorsHeader(tensors, metadata);
        }
    }

    private static Dictionary<string, string> ParseMetadata(string path, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new SafeTensorsException(path, null, $"\"{MetadataKey}\" is a JSON {value.ValueKind}, not an object of strings");
        }
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw new SafeTensorsException(path, null,
                    $"\"{MetadataKey}\" maps \"{item.Name}\" to a JSON {item.Value.ValueKind}, not a string");
            }
            if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
            {
                throw new SafeTensorsException(path, null, $"\"{MetadataKey}\" has the key \"{item.Name}\" twice");
            }
        }
        return metadata;
    }

    private static SafeTensorInfo ParseEntry(string path, string name, JsonElement entry, long dataBytes)
    {
        if (entry.ValueKind != JsonValueKind.Object)
        {
            throw new SafeTensorsException(path, name, $"the header entry is a JSON {entry.ValueKind}, not an object");
        }
        var dtypeElement = Field(path, name, entry, "dtype");
        if (dtypeElement.ValueKind != JsonValueKind.String)
        {
            throw new SafeTensorsException(path, name, $"\"dtype\" is a JSON {dtypeElement.ValueKind}, not a string");
        }
        string dtypeName = dtypeElement.GetString()!;
        if (!SafeTensorsDTypeExtensions.TryParse(dtypeName, out var dtype))
        {
            throw new SafeTensorsException(path, name,
                $"unsupported dtype \"{dtypeName}\" (supported: F64, F32, BF16, F16, I32, I64)");
        }

        var shapeElement = Field(path, name, entry, "shape");
        if (shapeElement.ValueKind != JsonValueKind.Array)
        {
            throw new SafeTensorsException(path, name, $"\"shape\" is a JSON {shapeElement.ValueKind}, not an array");
        }
        var shape = new long[shapeElement.GetArrayLength()];
        int d = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long value))
            {
                throw new SafeTensorsException(path, name, $"shape dimension {d} is {dim.GetRawText()}, not an integer");
            }
            if (value < 0)
            {
                throw new SafeTensorsException(path, name, $"shape dimension {d} is negative: {value}");
            }
            shape[d++] = value;
        }

        var offsetsElement = Field(path, name, entry, "data_offsets");
        if (offsetsElement.ValueKind != JsonValueKind.Array || offsetsElement.GetArrayLength() != 2)
        {
            throw new SafeTensorsException(path, name,
                $"\"data_offsets\" is {offsetsElement.GetRawText()}, not two non-negative integers [begin, end]");
        }
        var begin = offsetsElement[0];
        var end = offsetsElement[1];
        if (begin.ValueKind != JsonValueKind.Number || !begin.TryGetInt64(out long start) || start < 0
            || end.ValueKind != JsonValueKind.Number || !end.TryGetInt64(out long stop) || stop < 0)
        {
            throw new SafeTensorsException(path, name,
                $"\"data_offsets\" is {offsetsElement.GetRawText()}, not two non-negative integers [begin, end]");
        }
        if (start > stop)
        {
            throw new SafeTensorsException(path, name, $"data_offsets begin {start} is past end {stop}");
        }
        if (stop > dataBytes)
        {
            throw new SafeTensorsException(path, name,
                $"data_offsets end {stop} is past the end of the {dataBytes}-byte data region");
        }

        long count;
        long bytes;
        try
        {
            count = SafeTensorInfo.ElementCount(shape);
            bytes = checked(count * dtype.Size());
        }
        catch (OverflowException)
        {
            throw new SafeTensorsException(path, name,
                $"shape [{string.Join(", ", shape)}] of {dtypeName} has more bytes than a long holds");
        }
        if (stop - start != bytes)
        {
            throw new SafeTensorsException(path, name,
                $"shape/size mismatch: shape [{string.Join(", ", shape)}] of {dtypeName} is {count} elements = {bytes} bytes, "
                + $"but data_offsets [{start}, {stop}] hold {stop - start} bytes");
        }
        return new SafeTensorInfo(name, dtype, shape, start, stop);
    }

    private static JsonElement Field(string path, string name, JsonElement entry, string field)
    {
        if (!entry.TryGetProperty(field, out var value))
        {
            throw new SafeTensorsException(path, name, $"the header entry has no \"{field}\"");
        }
        return value;
    }

    /// <summary>Tensors sorted by begin: a non-empty range must start at or after the end of every earlier non-empty one.</summary>
    private static void CheckNoOverlap(string path, List<SafeTensorInfo> sorted)
    {
        SafeTensorInfo? furthest = null;
        foreach (var tensor in sorted)
        {
            if (tensor.DataStart == tensor.DataEnd)
            {
                continue;
            }
            if (furthest is not null && tensor.DataStart < furthest.DataEnd)
            {
                throw new SafeTensorsException(path, tensor.Name,
                    $"bytes [{tensor.DataStart}, {tensor.DataEnd}) overlap tensor \"{furthest.Name}\" at [{furthest.DataStart}, {furthest.DataEnd})");
            }
            if (furthest is null || tensor.DataEnd > furthest.DataEnd)
            {
                furthest = tensor;
            }
        }
    }
}
