using System.Buffers.Binary;
using System.Text;
using ModelParallel.Runtime.SafeTensors;

namespace ModelParallel.Tests.Runtime.SafeTensors;

/// <summary>Every malformed file is a SafeTensorsException naming the file, the tensor where there is one, and the numbers.</summary>
public class SafeTensorsMalformedTests : SafeTensorsTestFolder
{
    private const string F32Pair = "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

    private void AssertHeaderFails(string header, int dataBytes, string? tensor, params string[] fragments)
    {
        string path = WriteRaw("bad.safetensors", RawFile(header, new byte[dataBytes]));
        AssertFails(() => OpenAndReadAll(path), path, tensor, fragments);
        AssertFails(() => SafeTensorsCheckpoint.Open(path).Dispose(), path, tensor, fragments);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    public void AFileShorterThanEightBytesFails(int length)
    {
        string path = WriteRaw("short.safetensors", new byte[length]);
        AssertFails(() => OpenAndReadAll(path), path, null, $"{length} bytes", "shorter than");
    }

    [Fact]
    public void AHeaderLengthPastTheEndOfTheFileFails()
    {
        var bytes = RawFile("{}", new byte[10]);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 13);
        string path = WriteRaw("long.safetensors", bytes);
        AssertFails(() => OpenAndReadAll(path), path, null, "13", "12 bytes");
    }

    [Theory]
    [InlineData(100_000_001UL)]
    [InlineData(1UL << 40)]
    [InlineData(ulong.MaxValue)]
    public void AnAbsurdHeaderLengthFails(ulong length)
    {
        var bytes = RawFile("{}", []);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, length);
        string path = WriteRaw("absurd.safetensors", bytes);
        AssertFails(() => OpenAndReadAll(path), path, null, length.ToString(System.Globalization.CultureInfo.InvariantCulture), "absurd");
    }

    [Fact]
    public void AHeaderThatIsNotUtf8Fails()
    {
        string path = WriteRaw("latin1.safetensors", RawFile([(byte)'{', (byte)'"', 0xE9, (byte)'"', (byte)':', (byte)'1', (byte)'}'], []));
        AssertFails(() => OpenAndReadAll(path), path, null, "UTF-8");
    }

    [Theory]
    [InlineData("{\"a\":", "not valid JSON")]
    [InlineData("", "not valid JSON")]
    [InlineData("[1, 2]", "Array, not an object")]
    [InlineData("\"text\"", "String, not an object")]
    public void AHeaderThatIsNotAJsonObjectFails(string header, string fragment) => AssertHeaderFails(header, 0, null, fragment);

    [Theory]
    [InlineData("{\"a\":5}", "Number, not an object")]
    [InlineData("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", "no \"dtype\"")]
    [InlineData("{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", "\"dtype\" is a JSON Number")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", "no \"shape\"")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", "\"shape\" is a JSON Number")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", "dimension 0 is 2.5")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,8]}}", "dimension 1 is \"2\"")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", "no \"data_offsets\"")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,16]}}", "[0,8,16]", "two non-negative integers")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", "two non-negative integers")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"begin\":0}}}", "two non-negative integers")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", "[-8,0]")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", "[0,8.0]")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}", "two non-negative integers")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551616]}}", "two non-negative integers")]
    public void AnEntryWithAMissingOrIllTypedFieldFails(string header, params string[] fragments) =>
        AssertHeaderFails(header, 16, "a", fragments);

    [Theory]
    [InlineData("Q8_0")]
    [InlineData("f32")]
    [InlineData("U8")]
    public void AnUnknownDTypeFailsNamingIt(string dtype) =>
        AssertHeaderFails($"{{\"a\":{{\"dtype\":\"{dtype}\",\"shape\":[2],\"data_offsets\":[0,8]}}}}", 8, "a", $"\"{dtype}\"");

    [Fact]
    public void ANegativeDimensionFails() =>
        AssertHeaderFails("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}", 8, "a", "dimension 1 is negative: -1");

    [Theory]
    [InlineData("[4294967296,4294967296,4]")]
    [InlineData("[9223372036854775807,2]")]
    [InlineData("[2305843009213693952]")] // 2^61 elements, 2^63 bytes
    public void AnElementCountOverflowingALongFails(string shape) =>
        AssertHeaderFails($"{{\"a\":{{\"dtype\":\"F32\",\"shape\":{shape},\"data_offsets\":[0,8]}}}}", 8, "a", "more bytes than a long holds");

    [Fact]
    public void ABeginPastTheEndFails() =>
        AssertHeaderFails("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "a", "begin 8", "end 0");

    [Fact]
    public void AnEndPastTheDataRegionFails() =>
        AssertHeaderFails("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 7, "a", "end 8", "7-byte data region");

    [Fact]
    public void AShapeThatDisagreesWithTheByteRangeFails() =>
        AssertHeaderFails("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 16, "a",
            "shape/size mismatch", "12 bytes", "8 bytes");

    [Theory]
    [InlineData(4, 12)]
    [InlineData(0, 8)]
    [InlineData(2, 6)]
    public void OverlappingTensorsFailNamingBoth(int begin, int end)
    {
        string b = $"{{\"dtype\":\"BF16\",\"shape\":[{(end - begin) / 2}],\"data_offsets\":[{begin},{end}]}}";
        string empty = "{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}";
        string path = WriteRaw("overlap.safetensors", RawFile($"{{\"a\":{F32Pair},\"z\":{empty},\"b\":{b}}}", new byte[16]));
        var e = AssertFails(() => OpenAndReadAll(path), path, null, "\"a\"", "\"b\"", "overlap", $"[{begin}, {end})", "[0, 8)");
        Assert.True(e.TensorName is "a" or "b", e.TensorName);
    }

    [Fact]
    public void EmptyTensorsDoNotOverlapAnything()
    {
        string path = WriteRaw("empties.safetensors", RawFile(
            $"{{\"a\":{F32Pair},\"e\":{{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[4,4]}},\"f\":{{\"dtype\":\"F16\",\"shape\":[3,0],\"data_offsets\":[4,4]}}}}",
            new byte[8]));
        OpenAndReadAll(path);
    }

    [Fact]
    public void ADuplicateTensorNameFails() =>
        AssertHeaderFails($"{{\"a\":{F32Pair},\"a\":{{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}}}", 16, "a", "twice");

    [Theory]
    [InlineData("[\"pt\"]", "Array")]
    [InlineData("\"pt\"", "String")]
    [InlineData("{\"format\":1}", "\"format\"")]
    [InlineData("{\"format\":null}", "\"format\"")]
    [InlineData("{\"format\":{\"x\":\"y\"}}", "\"format\"")]
    public void MetadataThatIsNotAStringToStringObjectFails(string metadata, string fragment) =>
        AssertHeaderFails($"{{\"__metadata__\":{metadata},\"a\":{F32Pair}}}", 8, null, "__metadata__", fragment);

    [Fact]
    public void ReadingAFloatTensorAsIntFails()
    {
        string path = WriteRaw("floats.safetensors", RawFile($"{{\"a\":{F32Pair}}}", new byte[8]));
        using var file = SafeTensorsFile.Open(path);
        AssertFails(() => file.Read("a", 0, new int[2]), path, "a", "F32", "floating-point");
    }

    [Fact]
    public void AMissingFileFails()
    {
        string path = PathOf("absent.safetensors");
        AssertFails(() => SafeTensorsFile.Open(path), path, null, "cannot open");
        AssertFails(() => SafeTensorsCheckpoint.Open(path), path, null, "no such file");
    }

    [Fact]
    public void TheHeaderMayBePaddedWithSpaces()
    {
        string path = WriteRaw("padded.safetensors", RawFile(Encoding.UTF8.GetBytes($"{{\"a\":{F32Pair}}}     "), new byte[8]));
        OpenAndReadAll(path);
    }
}
