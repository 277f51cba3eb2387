using System.Text.Json;
using ModelParallel.Runtime.SafeTensors;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Runtime.SafeTensors;

public class SafeTensorsCheckpointTests : SafeTensorsTestFolder
{
    private static SafeTensorEntry Entry(Random rng, string name, SafeTensorsDType dtype, params long[] shape)
    {
        long count = SafeTensorInfo.ElementCount(shape);
        var data = new double[count];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = dtype is SafeTensorsDType.I32 or SafeTensorsDType.I64 ? rng.Next(1, 1000) : rng.Next(1, 256) / 8.0; // 8 significant bits: BF16 holds them
        }
        return new SafeTensorEntry(name, dtype, shape, data);
    }

    private static void AssertHolds(ITensorReader reader, IEnumerable<SafeTensorEntry> entries)
    {
        foreach (var entry in entries)
        {
            Assert.True(reader.Contains(entry.Name), entry.Name);
            var info = reader.Info(entry.Name);
            Assert.Equal(entry.DType, info.DType);
            Assert.Equal(entry.Shape, info.Shape);
            var read = new double[entry.Load().Length];
            reader.Read(entry.Name, 0, read);
            Assert.Equal(entry.Load().ToArray(), read); // values with few bits: every dtype holds them exactly
        }
        Assert.Equal(entries.Select(e => e.Name).Order(StringComparer.Ordinal), reader.Names.Order(StringComparer.Ordinal));
    }

    /// <summary>Tensors of 40, 24, 200 (over the limit of 64), 8, 32 and 48 bytes.</summary>
    private static SafeTensorEntry[] Model(Random rng) =>
    [
        Entry(rng, "embed.weight", SafeTensorsDType.F32, 2, 5),
        Entry(rng, "layers.0.norm", SafeTensorsDType.BF16, 12),
        Entry(rng, "layers.0.mlp", SafeTensorsDType.F64, 5, 5),
        Entry(rng, "layers.0.step", SafeTensorsDType.I64),
        Entry(rng, "layers.1.ids", SafeTensorsDType.I32, 8),
        Entry(rng, "head", SafeTensorsDType.F16, 4, 6),
    ];

    [Fact]
    public void ShardedWritingSplitsLikeTransformersAndReadsBackThroughFolderAndIndex()
    {
        var model = Model(TestRandom.Create());
        string folder = PathOf("sharded");
        SafeTensorsWriter.WriteSharded(folder, model, maxShardBytes: 64);

        // [40 + 24] [200 alone] [8 + 32] [48]
        string[] expectedFiles = [.. Enumerable.Range(1, 4).Select(i => $"model-0000{i}-of-00004.safetensors")];
        Assert.Equal(expectedFiles.Append(SafeTensorsCheckpoint.IndexFileName).Order(StringComparer.Ordinal),
            Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        using (var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(folder, SafeTensorsCheckpoint.IndexFileName))))
        {
            Assert.Equal(352, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
            var map = index.RootElement.GetProperty("weight_map");
            Assert.Equal(expectedFiles[0], map.GetProperty("embed.weight").GetString());
            Assert.Equal(expectedFiles[0], map.GetProperty("layers.0.norm").GetString());
            Assert.Equal(expectedFiles[1], map.GetProperty("layers.0.mlp").GetString());
            Assert.Equal(expectedFiles[2], map.GetProperty("layers.0.step").GetString());
            Assert.Equal(expectedFiles[2], map.GetProperty("layers.1.ids").GetString());
            Assert.Equal(expectedFiles[3], map.GetProperty("head").GetString());
        }
        using (var shard = SafeTensorsFile.Open(Path.Combine(folder, expectedFiles[2])))
        {
            Assert.Equal("pt", shard.Metadata["format"]);
            Assert.Equal(["layers.0.step", "layers.1.ids"], shard.Names);
        }

        using (var checkpoint = SafeTensorsCheckpoint.Open(folder))
        {
            Assert.Equal(expectedFiles.Select(f => Path.Combine(Path.GetFullPath(folder), f)), checkpoint.Files);
            AssertHolds(checkpoint, model);
            var ids = new int[8];
            checkpoint.Read("layers.1.ids", 0, ids);
            Assert.Equal(model[4].Load().ToArray(), ids.Select(v => (double)v));
        }
        using (var checkpoint = SafeTensorsCheckpoint.Open(Path.Combine(folder, SafeTensorsCheckpoint.IndexFileName)))
        {
            AssertHolds(checkpoint, model);
            AssertFails(() => checkpoint.Info("missing"), Path.Combine(folder, SafeTensorsCheckpoint.IndexFileName), "missing", "no such tensor");
        }
    }

    [Fact]
    public void ASingleShardWhenEverythingFits()
    {
        var model = Model(TestRandom.Create());
        string folder = PathOf("one");
        SafeTensorsWriter.WriteSharded(folder, model, maxShardBytes: 1 << 20);
        Assert.True(File.Exists(Path.Combine(folder, "model-00001-of-00001.safetensors")));
        using var checkpoint = SafeTensorsCheckpoint.Open(folder);
        Assert.Single(checkpoint.Files);
        AssertHolds(checkpoint, model);
    }

    [Fact]
    public void AFolderWithOneFileOpensThatFile()
    {
        var model = Model(TestRandom.Create());
        SafeTensorsWriter.Write(PathOf("model.safetensors"), model);
        SafeTensorsWriter.Write(PathOf("other.safetensors"), model.Take(1));
        using (var checkpoint = SafeTensorsCheckpoint.Open(Folder))
        {
            Assert.Equal([PathOf("model.safetensors")], checkpoint.Files);
            AssertHolds(checkpoint, model);
            AssertFails(() => checkpoint.Read("missing", 0, new double[1]), PathOf("model.safetensors"), "missing", "model.safetensors");
        }
        File.Delete(PathOf("model.safetensors"));
        using (var checkpoint = SafeTensorsCheckpoint.Open(Folder))
        {
            AssertHolds(checkpoint, model.Take(1));
        }
        using (var checkpoint = SafeTensorsCheckpoint.Open(PathOf("other.safetensors")))
        {
            AssertHolds(checkpoint, model.Take(1));
        }
        SafeTensorsWriter.Write(PathOf("third.safetensors"), model.Take(2));
        AssertFails(() => SafeTensorsCheckpoint.Open(Folder), Folder, null, "2 *.safetensors files", "other.safetensors", "third.safetensors");
    }

    [Fact]
    public void AnEmptyFolderFails()
    {
        AssertFails(() => SafeTensorsCheckpoint.Open(Folder), Folder, null, SafeTensorsCheckpoint.IndexFileName, "*.safetensors");
    }

    [Fact]
    public void AMissingShardFailsAtOpenNamingIt()
    {
        string folder = PathOf("sharded");
        SafeTensorsWriter.WriteSharded(folder, Model(TestRandom.Create()), maxShardBytes: 64);
        File.Delete(Path.Combine(folder, "model-00003-of-00004.safetensors"));
        string index = Path.Combine(folder, SafeTensorsCheckpoint.IndexFileName);
        var e = AssertFails(() => SafeTensorsCheckpoint.Open(folder), index, null, "model-00003-of-00004.safetensors", "does not exist");
        Assert.True(e.TensorName is "layers.0.step" or "layers.1.ids", e.TensorName);
    }

    [Fact]
    public void AMissingIndexFails()
    {
        string index = PathOf(SafeTensorsCheckpoint.IndexFileName);
        AssertFails(() => SafeTensorsCheckpoint.Open(index), index, null, "no such file");
    }

    [Theory]
    [InlineData("{\"metadata\":{}}", "weight_map")]
    [InlineData("{\"weight_map\":[]}", "weight_map")]
    [InlineData("{\"weight_map\":", "not valid JSON")]
    public void AMalformedIndexFails(string json, string fragment)
    {
        string index = PathOf(SafeTensorsCheckpoint.IndexFileName);
        File.WriteAllText(index, json);
        AssertFails(() => SafeTensorsCheckpoint.Open(Folder), index, null, fragment);
    }

    [Fact]
    public void IndexErrorsNameTheTensor()
    {
        string index = PathOf(SafeTensorsCheckpoint.IndexFileName);
        File.WriteAllText(index, "{\"weight_map\":{\"a\":3}}");
        AssertFails(() => SafeTensorsCheckpoint.Open(index), index, "a", "not a file name");
        SafeTensorsWriter.Write(PathOf("s.safetensors"), [new SafeTensorEntry("a", SafeTensorsDType.F32, [], new[] { 1.0 })]);
        File.WriteAllText(index, "{\"weight_map\":{\"a\":\"s.safetensors\",\"a\":\"s.safetensors\"}}");
        AssertFails(() => SafeTensorsCheckpoint.Open(index), index, "a", "twice");
    }

    [Fact]
    public void ATensorListedInTheIndexButAbsentFromItsShardFailsOnFirstUseOfThatShard()
    {
        var rng = TestRandom.Create();
        var model = Model(rng);
        SafeTensorsWriter.Write(PathOf("a.safetensors"), model.Take(3));
        SafeTensorsWriter.Write(PathOf("b.safetensors"), model.Skip(3));
        var map = model.Take(3).Select(e => (e.Name, File: "a.safetensors"))
            .Concat(model.Skip(3).Select(e => (e.Name, File: "b.safetensors")))
            .Append((Name: "ghost", File: "b.safetensors"))
            .ToDictionary(p => p.Name, p => p.File);
        string index = PathOf(SafeTensorsCheckpoint.IndexFileName);
        File.WriteAllText(index, JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = map }));

        using var checkpoint = SafeTensorsCheckpoint.Open(Folder);
        Assert.True(checkpoint.Contains("ghost"));
        AssertHolds(new Only(checkpoint, model.Take(3)), model.Take(3)); // shard a is fine
        AssertFails(() => checkpoint.Info("ghost"), PathOf("b.safetensors"), "ghost", "no such tensor", SafeTensorsCheckpoint.IndexFileName);
        AssertFails(() => checkpoint.Read("head", 0, new double[24]), PathOf("b.safetensors"), "ghost");
    }

    [Fact]
    public void ANameInTwoShardsFails()
    {
        var rng = TestRandom.Create();
        var x = Entry(rng, "x", SafeTensorsDType.F32, 3);
        var y = Entry(rng, "y", SafeTensorsDType.F32, 3);
        SafeTensorsWriter.Write(PathOf("a.safetensors"), [x, y]);
        SafeTensorsWriter.Write(PathOf("b.safetensors"), [x]);
        string index = PathOf(SafeTensorsCheckpoint.IndexFileName);
        File.WriteAllText(index, "{\"weight_map\":{\"y\":\"a.safetensors\",\"x\":\"b.safetensors\"}}");
        using var checkpoint = SafeTensorsCheckpoint.Open(index);
        var read = new double[3];
        checkpoint.Read("x", 0, read);
        Assert.Equal(x.Load().ToArray(), read);
        AssertFails(() => checkpoint.Read("y", 0, read), PathOf("a.safetensors"), "x", "b.safetensors", "duplicated across shards");
    }

    [Fact]
    public void ShardsOpenLazily()
    {
        string folder = PathOf("sharded");
        var model = Model(TestRandom.Create());
        SafeTensorsWriter.WriteSharded(folder, model, maxShardBytes: 64);
        string broken = Path.Combine(folder, "model-00004-of-00004.safetensors");
        File.WriteAllBytes(broken, [1, 2, 3]);
        using var checkpoint = SafeTensorsCheckpoint.Open(folder);
        AssertHolds(new Only(checkpoint, model.Take(5)), model.Take(5));
        AssertFails(() => checkpoint.Info("head"), broken, null, "3 bytes");
        AssertFails(() => checkpoint.Info("head"), broken, null, "3 bytes"); // the same error again, not a half-open shard
    }

    /// <summary>A view of a reader that lists only some names, so that AssertHolds can check part of a checkpoint.</summary>
    private sealed class Only(ITensorReader inner, IEnumerable<SafeTensorEntry> entries) : ITensorReader
    {
        public IReadOnlyCollection<string> Names { get; } = entries.Select(e => e.Name).ToArray();

        public bool Contains(string name) => inner.Contains(name);

        public SafeTensorInfo Info(string name) => inner.Info(name);

        public void Read(string name, long elementOffset, Span<double> destination) => inner.Read(name, elementOffset, destination);

        public void Read(string name, long elementOffset, Span<float> destination) => inner.Read(name, elementOffset, destination);

        public void Read(string name, long elementOffset, Span<int> destination) => inner.Read(name, elementOffset, destination);

        public void Dispose()
        {
        }
    }
}
