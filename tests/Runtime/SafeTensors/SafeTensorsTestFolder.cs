using System.Buffers.Binary;
using System.Text;
using ModelParallel.Runtime.SafeTensors;

namespace ModelParallel.Tests.Runtime.SafeTensors;

/// <summary>A fresh temporary folder per test (xunit makes one instance per test and disposes it), and raw-file helpers.</summary>
public abstract class SafeTensorsTestFolder : IDisposable
{
    protected SafeTensorsTestFolder()
    {
        Folder = Directory.CreateTempSubdirectory("mp-safetensors-").FullName;
    }

    protected string Folder { get; }

    protected string PathOf(string name) => Path.Combine(Folder, name);

    public void Dispose()
    {
        Directory.Delete(Folder, recursive: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>The format by hand: 8-byte little-endian header length, the header bytes, the data bytes.</summary>
    protected static byte[] RawFile(byte[] header, byte[] data)
    {
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
        header.CopyTo(file, 8);
        data.CopyTo(file, 8 + header.Length);
        return file;
    }

    protected static byte[] RawFile(string headerJson, byte[] data) => RawFile(Encoding.UTF8.GetBytes(headerJson), data);

    protected string WriteRaw(string name, byte[] bytes)
    {
        string path = PathOf(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Runs <paramref name="action"/>, which must throw a SafeTensorsException (no other type) naming
    /// <paramref name="path"/>'s file and, when given, <paramref name="tensor"/>.</summary>
    protected static SafeTensorsException AssertFails(Action action, string path, string? tensor, params string[] fragments)
    {
        var thrown = Record.Exception(action);
        Assert.NotNull(thrown);
        var e = Assert.IsType<SafeTensorsException>(thrown, exactMatch: true);
        Assert.Contains(Path.GetFileName(path), e.Message);
        Assert.Equal(path, e.Path);
        if (tensor is not null)
        {
            Assert.Equal(tensor, e.TensorName);
            Assert.Contains($"\"{tensor}\"", e.Message);
        }
        foreach (string fragment in fragments)
        {
            Assert.Contains(fragment, e.Message);
        }
        return e;
    }

    /// <summary>Opens and reads every tensor fully as double (and as int where the dtype is an integer): the
    /// way a malformed file would be found if the open did not catch it.</summary>
    protected static void OpenAndReadAll(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        foreach (var info in file.Tensors)
        {
            file.Read(info.Name, 0, new double[info.Count]);
        }
    }
}
