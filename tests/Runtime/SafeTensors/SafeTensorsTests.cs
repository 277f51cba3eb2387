using System.Text;
using ModelParallel.Runtime;
using ModelParallel.Runtime.SafeTensors;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Runtime.SafeTensors;

public class SafeTensorsTests : SafeTensorsTestFolder
{
    /// <summary>Random non-zero values a float holds exactly (so that rounding to BF16/F16 happens once), across
    /// several magnitudes, both signs.</summary>
    private static double[] RandomFloats(Random rng, int count, double scale)
    {
        var values = new double[count];
        for (int i = 0; i < count; i++)
        {
            double magnitude = (0.05 + rng.NextDouble()) * scale * Math.Pow(2, rng.Next(-6, 7));
            values[i] = (float)(rng.Next(2) == 0 ? magnitude : -magnitude);
        }
        return values;
    }

    private static double Rounded(SafeTensorsDType dtype, double value) => dtype switch
    {
        SafeTensorsDType.F64 => value,
        SafeTensorsDType.F32 => (float)value,
        SafeTensorsDType.BF16 => (float)(BFloat16)(float)value,
        SafeTensorsDType.F16 => (double)(Half)value,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    [Theory]
    [InlineData(SafeTensorsDType.F64)]
    [InlineData(SafeTensorsDType.F32)]
    [InlineData(SafeTensorsDType.BF16)]
    [InlineData(SafeTensorsDType.F16)]
    public void FloatingPointDTypesRoundTripToTheRoundedValues(SafeTensorsDType dtype)
    {
        var rng = TestRandom.Create();
        double[] values = RandomFloats(rng, 3 * 257, dtype == SafeTensorsDType.F16 ? 10 : 1000);
        if (dtype == SafeTensorsDType.F64)
        {
            for (int i = 0; i < values.Length; i++)
            {
                values[i] += values[i] * 1e-12; // not a float any more
            }
        }
        string path = PathOf("t.safetensors");
        SafeTensorsWriter.Write(path, [new SafeTensorEntry("w", dtype, [3, 257], values)]);

        using var file = SafeTensorsFile.Open(path);
        var info = file.Info("w");
        Assert.Equal(dtype, info.DType);
        Assert.Equal([3L, 257L], info.Shape);
        Assert.Equal(3 * 257, info.Count);
        Assert.Equal(3 * 257 * dtype.Size(), info.DataEnd - info.DataStart);
        var asDouble = new double[values.Length];
        var asFloat = new float[values.Length];
        file.Read("w", 0, asDouble);
        file.Read("w", 0, asFloat);
        for (int i = 0; i < values.Length; i++)
        {
            double expected = Rounded(dtype, values[i]);
            Assert.True(expected != 0, $"test value {values[i]:R} rounds to zero ({TestRandom.Describe()})");
            Assert.True(expected == asDouble[i], $"{dtype} element {i}: wrote {values[i]:R}, expected {expected:R}, read {asDouble[i]:R} ({TestRandom.Describe()})");
            Assert.True((float)expected == asFloat[i], $"{dtype} element {i} as float: expected {(float)expected:R}, read {asFloat[i]:R} ({TestRandom.Describe()})");
        }
        Assert.Throws<SafeTensorsException>(() => file.Read("w", 0, new int[1]));
    }

    [Fact]
    public void IntegerDTypesRoundTripAndI64BeyondIntReadsAsDouble()
    {
        var rng = TestRandom.Create();
        var ints = new double[100];
        var smallLongs = new double[100];
        var bigLongs = new double[100];
        for (int i = 0; i < ints.Length; i++)
        {
            int value = rng.Next(1, int.MaxValue);
            ints[i] = rng.Next(2) == 0 ? value : -value;
            smallLongs[i] = -ints[i];
            long big = rng.NextInt64(1L << 32, 1L << 53);
            bigLongs[i] = rng.Next(2) == 0 ? big : -big;
        }
        ints[0] = int.MinValue;
        ints[1] = int.MaxValue;
        string path = PathOf("ints.safetensors");
        SafeTensorsWriter.Write(path,
        [
            new SafeTensorEntry("i32", SafeTensorsDType.I32, [10, 10], ints),
            new SafeTensorEntry("i64small", SafeTensorsDType.I64, [100], smallLongs),
            new SafeTensorEntry("i64big", SafeTensorsDType.I64, [4, 25], bigLongs),
        ]);

        using var file = SafeTensorsFile.Open(path);
        var asInt = new int[100];
        var asDouble = new double[100];
        file.Read("i32", 0, asInt);
        file.Read("i32", 0, asDouble);
        Assert.Equal(ints, asInt.Select(v => (double)v));
        Assert.Equal(ints, asDouble);
        file.Read("i64small", 0, asInt);
        Assert.Equal(smallLongs, asInt.Select(v => (double)v));
        file.Read("i64big", 0, asDouble);
        Assert.Equal(bigLongs, asDouble);
        AssertFails(() => file.Read("i64big", 0, asInt), path, "i64big",
            ((long)bigLongs[0]).ToString(System.Globalization.CultureInfo.InvariantCulture), "element 0");
        AssertFails(() => file.Read("i32", 0, new float[1]), path, "i32", "integer dtype");
    }

    [Fact]
    public void ScalarsEmptyTensorsAndMetadataRoundTrip()
    {
        string path = PathOf("mixed.safetensors");
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode \"quoted\"" };
        SafeTensorsWriter.Write(path,
        [
            new SafeTensorEntry("scalar", SafeTensorsDType.F32, [], new[] { -3.5 }),
            new SafeTensorEntry("empty", SafeTensorsDType.BF16, [4, 0, 3], Array.Empty<double>()),
            new SafeTensorEntry("step", SafeTensorsDType.I64, [], new[] { 123456789012.0 }),
            new SafeTensorEntry("emptyLast", SafeTensorsDType.F64, [0], Array.Empty<double>()),
        ], metadata);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(metadata, file.Metadata);
        Assert.Equal(["scalar", "empty", "step", "emptyLast"], file.Tensors.Select(t => t.Name));
        Assert.Equal(0, (file.DataOffset) % 8);
        Assert.Empty(file.Info("scalar").Shape);
        Assert.Equal(1, file.Info("scalar").Count);
        var one = new double[1];
        file.Read("scalar", 0, one);
        Assert.Equal(-3.5, one[0]);
        file.Read("step", 0, one);
        Assert.Equal(123456789012.0, one[0]);
        Assert.Equal(0, file.Info("empty").Count);
        file.Read("empty", 0, Span<double>.Empty);
        file.Read("emptyLast", 0, Span<float>.Empty);
        AssertFails(() => file.Read("empty", 0, one), path, "empty", "0 elements");
    }

    [Fact]
    public void AFileWithNoTensorsOpens()
    {
        string path = PathOf("none.safetensors");
        SafeTensorsWriter.Write(path, []);
        using var file = SafeTensorsFile.Open(path);
        Assert.Empty(file.Tensors);
        Assert.Empty(file.Metadata);
        Assert.Equal(16, new FileInfo(path).Length); // "{}" padded to 8 bytes
    }

    [Fact]
    public void ElementOffsetsReadSlicesAndRangesOutsideTheTensorFail()
    {
        var rng = TestRandom.Create();
        double[] values = RandomFloats(rng, 6 * 7, 1);
        string path = PathOf("slices.safetensors");
        SafeTensorsWriter.Write(path,
        [
            new SafeTensorEntry("f32", SafeTensorsDType.F32, [6, 7], values),
            new SafeTensorEntry("bf16", SafeTensorsDType.BF16, [6, 7], values),
        ]);
        using var file = SafeTensorsFile.Open(path);
        for (int offset = 0; offset <= 42; offset += 7)
        {
            for (int length = 0; offset + length <= 42; length += 5)
            {
                var row = new float[length];
                file.Read("f32", offset, row);
                Assert.Equal(values.Skip(offset).Take(length).Select(v => (float)v), row);
                var bf = new double[length];
                file.Read("bf16", offset, bf);
                Assert.Equal(values.Skip(offset).Take(length).Select(v => Rounded(SafeTensorsDType.BF16, v)), bf);
            }
        }
        AssertFails(() => file.Read("f32", -1, new float[1]), path, "f32", "-1", "42 elements");
        AssertFails(() => file.Read("f32", 40, new float[3]), path, "f32", "40", "3", "42 elements");
        AssertFails(() => file.Read("f32", 43, Span<float>.Empty), path, "f32", "43");
        AssertFails(() => file.Read("f32", long.MaxValue, new float[2]), path, "f32");
        AssertFails(() => file.Read("nope", 0, new float[1]), path, "nope", "no such tensor");
        AssertFails(() => file.Info("nope"), path, "nope");
    }

    [Fact]
    public void BFloat16IsRoundedOnceFromDouble()
    {
        // 1 + 2^-8 is halfway between the bfloat16 neighbours 1 and 1 + 2^-7; a little above it must go up.
        // Rounding to float first lands exactly on the halfway point, which then goes to even (1).
        double above = 1 + Math.Pow(2, -8) + Math.Pow(2, -30);
        double below = 1 + Math.Pow(2, -8) - Math.Pow(2, -30);
        double tie = 1 + Math.Pow(2, -8);
        string path = PathOf("bf16.safetensors");
        SafeTensorsWriter.Write(path, [new SafeTensorEntry("x", SafeTensorsDType.BF16, [3], new[] { above, below, -tie })]);
        using var file = SafeTensorsFile.Open(path);
        var read = new double[3];
        file.Read("x", 0, read);
        Assert.Equal([1 + Math.Pow(2, -7), 1, -1], read);
    }

    [Fact]
    public void WritingNonIntegersOrOutOfRangeValuesAsIntegersFailsNamingTheTensorAndValue()
    {
        string path = PathOf("bad.safetensors");
        AssertFails(() => SafeTensorsWriter.Write(path, [new SafeTensorEntry("ids", SafeTensorsDType.I32, [2], new[] { 1.0, 2.5 })]),
            path, "ids", "2.5", "element 1");
        AssertFails(() => SafeTensorsWriter.Write(path, [new SafeTensorEntry("ids", SafeTensorsDType.I32, [1], new[] { 2147483648.0 })]),
            path, "ids", "2147483648");
        AssertFails(() => SafeTensorsWriter.Write(path, [new SafeTensorEntry("big", SafeTensorsDType.I64, [1], new[] { Math.Pow(2, 63) })]),
            path, "big", "9.223372036854776E+18");
        AssertFails(() => SafeTensorsWriter.Write(path, [new SafeTensorEntry("nan", SafeTensorsDType.I64, [1], new[] { double.NaN })]),
            path, "nan", "NaN");
        AssertFails(() => SafeTensorsWriter.Write(path, [new SafeTensorEntry("short", SafeTensorsDType.F32, [2, 3], new double[5])]),
            path, "short", "6 elements", "5");
        AssertFails(() => SafeTensorsWriter.Write(path,
            [new SafeTensorEntry("twice", SafeTensorsDType.F32, [], new[] { 1.0 }), new SafeTensorEntry("twice", SafeTensorsDType.F32, [], new[] { 1.0 })]),
            path, "twice");
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFiles(Folder)); // no temporary file left behind
    }

    [Fact]
    public void WritingReplacesAnExistingFileAndLeavesNoTemporaryFile()
    {
        string path = PathOf("model.safetensors");
        SafeTensorsWriter.Write(path, [new SafeTensorEntry("a", SafeTensorsDType.F32, [1], new[] { 1.0 })]);
        SafeTensorsWriter.Write(path, [new SafeTensorEntry("b", SafeTensorsDType.F64, [2], new[] { 2.0, 3.0 })]);
        Assert.Equal([path], Directory.GetFiles(Folder));
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(["b"], file.Names);
    }

    [Fact]
    public void ConcurrentReadsFromManyThreadsAgree()
    {
        var rng = TestRandom.Create();
        const int Rows = 64;
        const int Columns = 4099;
        double[] values = RandomFloats(rng, Rows * Columns, 1);
        string path = PathOf("shared.safetensors");
        SafeTensorsWriter.Write(path,
        [
            new SafeTensorEntry("bf16", SafeTensorsDType.BF16, [Rows, Columns], values),
            new SafeTensorEntry("f16", SafeTensorsDType.F16, [Rows, Columns], values),
        ]);
        using var file = SafeTensorsFile.Open(path);
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, rank =>
        {
            var row = new double[Columns];
            var rowF = new float[Columns];
            for (int r = rank; r < Rows * 4; r += 8)
            {
                int rowIndex = r % Rows;
                string name = r % 2 == 0 ? "bf16" : "f16";
                var dtype = r % 2 == 0 ? SafeTensorsDType.BF16 : SafeTensorsDType.F16;
                file.Read(name, (long)rowIndex * Columns, row);
                file.Read(name, (long)rowIndex * Columns, rowF);
                for (int c = 0; c < Columns; c++)
                {
                    double expected = Rounded(dtype, values[rowIndex * Columns + c]);
                    if (row[c] != expected || rowF[c] != (float)expected)
                    {
                        failures.Add($"rank {rank} {name}[{rowIndex}, {c}]: {row[c]:R} / {rowF[c]:R}, expected {expected:R}");
                        return;
                    }
                }
            }
        });
        Assert.True(failures.IsEmpty, string.Join("; ", failures.Take(5)) + $" ({TestRandom.Describe()})");
    }

    [Fact]
    public void AGoldenFileBuiltByteByByteFromTheFormatReadsBack()
    {
        // Header keys in an order other than the data order; the header length (365) leaves the data region unaligned.
        string header = "{\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[24,30]},"
            + "\"__metadata__\":{\"format\":\"pt\"},"
            + "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
            + "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[38,42]},"
            + "\"i\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[30,38]},"
            + "\"d\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[42,50]},"
            + "\"n\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[50,58]}}";
        byte[] data =
        [
            // w, F32 [2, 3]: 1.5, -2.25, 3, 0.5, 100, -0.125 (0x3FC00000, 0xC0100000, 0x40400000, 0x3F000000, 0x42C80000, 0xBE000000)
            0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x10, 0xC0, 0x00, 0x00, 0x40, 0x40,
            0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0xC8, 0x42, 0x00, 0x00, 0x00, 0xBE,
            // b, BF16 [3]: 1, -2, 0.15625 (0x3F80, 0xC000, 0x3E20)
            0x80, 0x3F, 0x00, 0xC0, 0x20, 0x3E,
            // i, I64 []: -5000000000 (0xFFFFFFFED5FA0E00)
            0x00, 0x0E, 0xFA, 0xD5, 0xFE, 0xFF, 0xFF, 0xFF,
            // h, F16 [2]: 1, -0.5 (0x3C00, 0xB800)
            0x00, 0x3C, 0x00, 0xB8,
            // d, F64 [1, 1]: -0.1 (0xBFB999999999999A)
            0x9A, 0x99, 0x99, 0x99, 0x99, 0x99, 0xB9, 0xBF,
            // n, I32 [2]: 7, -2 (0x00000007, 0xFFFFFFFE)
            0x07, 0x00, 0x00, 0x00, 0xFE, 0xFF, 0xFF, 0xFF,
        ];
        string path = WriteRaw("golden.safetensors", RawFile(header, data));
        Assert.Equal(365, Encoding.UTF8.GetByteCount(header));

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(8 + 365, file.DataOffset);
        Assert.Equal(new Dictionary<string, string> { ["format"] = "pt" }, file.Metadata);
        Assert.Equal(["w", "b", "i", "h", "d", "n"], file.Tensors.Select(t => t.Name));
        Assert.Equal(new SafeTensorInfo("w", SafeTensorsDType.F32, [2, 3], 0, 24).ToString(), file.Info("w").ToString());

        var w = new float[6];
        file.Read("w", 0, w);
        Assert.Equal([1.5f, -2.25f, 3f, 0.5f, 100f, -0.125f], w);
        var b = new double[3];
        file.Read("b", 0, b);
        Assert.Equal([1, -2, 0.15625], b);
        var scalar = new double[1];
        file.Read("i", 0, scalar);
        Assert.Equal(-5000000000.0, scalar[0]);
        var h = new float[2];
        file.Read("h", 0, h);
        Assert.Equal([1f, -0.5f], h);
        file.Read("d", 0, scalar);
        Assert.Equal(-0.1, scalar[0]);
        var n = new int[2];
        file.Read("n", 0, n);
        Assert.Equal([7, -2], n);
        var tail = new float[2];
        file.Read("w", 4, tail);
        Assert.Equal([100f, -0.125f], tail);
    }

    [Fact]
    public void OurWriterProducesTheFormatByteByByte()
    {
        string path = PathOf("ours.safetensors");
        SafeTensorsWriter.Write(path, [new SafeTensorEntry("x", SafeTensorsDType.BF16, [2], new[] { 1.0, -2.0 })]);
        string json = "{\"x\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}";
        string padded = json.PadRight((json.Length + 7) / 8 * 8);
        Assert.Equal(RawFile(padded, [0x80, 0x3F, 0x00, 0xC0]), File.ReadAllBytes(path));
    }
}
