namespace ModelParallel.Runtime.SafeTensors;

/// <summary>
/// Thrown for malformed safetensors files and indexes and for bad reads and writes. The message starts with the
/// file (or checkpoint) path and, where one is involved, the tensor name, then says what is wrong with the numbers.
/// </summary>
public sealed class SafeTensorsException : IOException
{
    public SafeTensorsException(string path, string? tensorName, string detail, Exception? innerException = null)
        : base(Describe(path, tensorName, detail), innerException)
    {
        Path = path;
        TensorName = tensorName;
    }

    /// <summary>The file, folder or index the error is about.</summary>
    public string Path { get; }

    /// <summary>The tensor the error is about, or null when it is about the file as a whole.</summary>
    public string? TensorName { get; }

    private static string Describe(string path, string? tensorName, string detail) =>
        tensorName is null ? $"{path}: {detail}" : $"{path}: tensor \"{tensorName}\": {detail}";
}
