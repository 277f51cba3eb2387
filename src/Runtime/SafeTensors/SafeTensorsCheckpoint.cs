using System.Text.Json;

namespace ModelParallel.Runtime.SafeTensors;

/// <summary>
/// A Hugging Face style checkpoint: either one safetensors file, or shards listed by an index json
/// ({"metadata": {...}, "weight_map": {tensor: shard file}}) whose shards are opened lazily, each on the first use of
/// one of its tensors. Shard files named by the index are checked to exist when the checkpoint opens; a shard's
/// contents are checked against the index when the shard opens (every tensor the index assigns to it present, none
/// that the index assigns to another shard). Reads from several threads at once are safe.
/// </summary>
public sealed class SafeTensorsCheckpoint : ITensorReader
{
    /// <summary>The index transformers writes next to sharded weights.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    /// <summary>The single file transformers writes for unsharded weights.</summary>
    public const string SingleFileName = "model.safetensors";

    private readonly string _path;
    private readonly Dictionary<string, int> _shardByName;
    private readonly string[] _names;
    private readonly Lazy<SafeTensorsFile>[] _shards;

    private SafeTensorsCheckpoint(string path, string[] files, Dictionary<string, int> shardByName, string[] names,
        Func<int, SafeTensorsFile> open)
    {
        _path = path;
        Files = files;
        _shardByName = shardByName;
        _names = names;
        _shards = new Lazy<SafeTensorsFile>[files.Length];
        for (int i = 0; i < files.Length; i++)
        {
            int shard = i;
            _shards[i] = new Lazy<SafeTensorsFile>(() => open(shard), LazyThreadSafetyMode.ExecutionAndPublication);
        }
    }

    /// <summary>The folder, index or file this checkpoint was opened from.</summary>
    public string Path => _path;

    /// <summary>Full paths of the safetensors files, in ordinal order.</summary>
    public IReadOnlyList<string> Files { get; }

    public IReadOnlyCollection<string> Names => _names;

    /// <summary>
    /// Opens <paramref name="path"/>: a folder holding <see cref="IndexFileName"/> (sharded), else
    /// <see cref="SingleFileName"/>, else its only *.safetensors file; or the path of an index json; or the path of one
    /// safetensors file. Anything missing or ambiguous is a <see cref="SafeTensorsException"/> naming the path.
    /// </summary>
    public static SafeTensorsCheckpoint Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            string index = System.IO.Path.Combine(path, IndexFileName);
            if (File.Exists(index))
            {
                return OpenIndex(index);
            }
            string single = System.IO.Path.Combine(path, SingleFileName);
            if (File.Exists(single))
            {
                return OpenSingle(single);
            }
            var candidates = Directory.GetFiles(path, "*.safetensors").Order(StringComparer.Ordinal).ToArray();
            return candidates.Length switch
            {
                1 => OpenSingle(candidates[0]),
                0 => throw new SafeTensorsException(path, null,
                    $"the folder holds neither {IndexFileName} nor any *.safetensors file"),
                _ => throw new SafeTensorsException(path, null,
                    $"the folder holds no {IndexFileName} or {SingleFileName} but {candidates.Length} *.safetensors files, "
                    + $"so which one is meant is unclear: {string.Join(", ", candidates.Select(System.IO.Path.GetFileName))}"),
            };
        }
        if (!File.Exists(path))
        {
            throw new SafeTensorsException(path, null, "no such file or folder");
        }
        return path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? OpenIndex(path) : OpenSingle(path);
    }

    private static SafeTensorsCheckpoint OpenSingle(string file)
    {
        var opened = SafeTensorsFile.Open(file);
        var shardByName = opened.Tensors.ToDictionary(t => t.Name, _ => 0, StringComparer.Ordinal);
        var names = opened.Tensors.Select(t => t.Name).ToArray();
        var checkpoint = new SafeTensorsCheckpoint(file, [System.IO.Path.GetFullPath(file)], shardByName, names, _ => opened);
        _ = checkpoint._shards[0].Value; // already open: counted as opened, so that Dispose closes it
        return checkpoint;
    }

    private static SafeTensorsCheckpoint OpenIndex(string indexPath)
    {
        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        var weightMap = ReadWeightMap(indexPath);
        var files = weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        var fullPaths = new string[files.Length];
        for (int i = 0; i < files.Length; i++)
        {
            fullPaths[i] = System.IO.Path.Combine(folder, files[i]);
            if (!File.Exists(fullPaths[i]))
            {
                string example = weightMap.First(kv => kv.Value == files[i]).Key;
                throw new SafeTensorsException(indexPath, example,
                    $"the weight_map names shard \"{files[i]}\", which does not exist ({fullPaths[i]})");
            }
        }
        var shardOf = files.Select((f, i) => (f, i)).ToDictionary(p => p.f, p => p.i, StringComparer.Ordinal);
        var shardByName = weightMap.ToDictionary(kv => kv.Key, kv => shardOf[kv.Value], StringComparer.Ordinal);
        var names = weightMap.Keys.ToArray();
        return new SafeTensorsCheckpoint(indexPath, fullPaths, shardByName, names,
            shard => OpenShard(indexPath, fullPaths, shard, shardByName));
    }

    /// <summary>Reads the index's weight_map: an object from tensor name to a shard file name in the index's folder.</summary>
    private static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(indexPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SafeTensorsException(indexPath, null, $"cannot read the index: {e.Message}", e);
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new SafeTensorsException(indexPath, null, $"the index is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out var map)
                || map.ValueKind != JsonValueKind.Object)
            {
                throw new SafeTensorsException(indexPath, null, "the index is not a JSON object with a \"weight_map\" object");
            }
            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(entry.Value.GetString()))
                {
                    throw new SafeTensorsException(indexPath, entry.Name,
                        $"the weight_map maps it to {entry.Value.GetRawText()}, not a file name");
                }
                string file = entry.Value.GetString()!;
                if (System.IO.Path.IsPathRooted(file))
                {
                    throw new SafeTensorsException(indexPath, entry.Name,
                        $"the weight_map maps it to \"{file}\", a rooted path rather than a file beside the index");
                }
                if (!weightMap.TryAdd(entry.Name, file))
                {
                    throw new SafeTensorsException(indexPath, entry.Name,
                        $"the weight_map lists it twice (\"{weightMap[entry.Name]}\" and \"{file}\")");
                }
            }
            return weightMap;
        }
    }

    /// <summary>Opens one shard and checks it against the index.</summary>
    private static SafeTensorsFile OpenShard(string indexPath, string[] fullPaths, int shard, Dictionary<string, int> shardByName)
    {
        var file = SafeTensorsFile.Open(fullPaths[shard]);
        try
        {
            foreach (var tensor in file.Tensors)
            {
                if (shardByName.TryGetValue(tensor.Name, out int listed) && listed != shard)
                {
                    throw new SafeTensorsException(fullPaths[shard], tensor.Name,
                        $"the tensor is in this shard, but {indexPath} maps it to {fullPaths[listed]}: the name is duplicated across shards");
                }
            }
            foreach (var (name, listed) in shardByName)
            {
                if (listed == shard && !file.Contains(name))
                {
                    throw new SafeTensorsException(fullPaths[shard], name,
                        $"{indexPath} maps the tensor to this shard, but the shard has no such tensor");
                }
            }
            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _shardByName.ContainsKey(name);

    public SafeTensorInfo Info(string name) => Shard(name).Info(name);

    public void Read(string name, long elementOffset, Span<double> destination) => Shard(name).Read(name, elementOffset, destination);

    public void Read(string name, long elementOffset, Span<float> destination) => Shard(name).Read(name, elementOffset, destination);

    public void Read(string name, long elementOffset, Span<int> destination) => Shard(name).Read(name, elementOffset, destination);

    /// <summary>Closes the shards opened so far.</summary>
    public void Dispose()
    {
        foreach (var shard in _shards)
        {
            if (shard.IsValueCreated)
            {
                shard.Value.Dispose();
            }
        }
    }

    private SafeTensorsFile Shard(string name)
    {
        if (!_shardByName.TryGetValue(name, out int shard))
        {
            string files = Files.Count <= 4
                ? string.Join(", ", Files.Select(System.IO.Path.GetFileName))
                : $"{Files.Count} files";
            throw new SafeTensorsException(_path, name, $"no such tensor in the checkpoint ({files})");
        }
        return _shards[shard].Value;
    }

    public override string ToString() => $"{_path} ({_names.Length} tensors in {Files.Count} files)";
}
