namespace ModelParallel.Runtime.SafeTensors;

/// <summary>Element types of a safetensors file, named as in its header ("F64", "F32", ...).</summary>
public enum SafeTensorsDType
{
    F64,
    F32,
    BF16,
    F16,
    I32,
    I64,
}

public static class SafeTensorsDTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int Size(this SafeTensorsDType t) => t switch
    {
        SafeTensorsDType.F64 or SafeTensorsDType.I64 => 8,
        SafeTensorsDType.F32 or SafeTensorsDType.I32 => 4,
        SafeTensorsDType.BF16 or SafeTensorsDType.F16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown safetensors dtype"),
    };

    /// <summary>True for F64, F32, BF16 and F16.</summary>
    public static bool IsFloatingPoint(this SafeTensorsDType t) => t is not (SafeTensorsDType.I32 or SafeTensorsDType.I64);

    /// <summary>The header's name for <paramref name="t"/> ("F32", ...).</summary>
    public static string HeaderName(this SafeTensorsDType t) => t switch
    {
        SafeTensorsDType.F64 => "F64",
        SafeTensorsDType.F32 => "F32",
        SafeTensorsDType.BF16 => "BF16",
        SafeTensorsDType.F16 => "F16",
        SafeTensorsDType.I32 => "I32",
        SafeTensorsDType.I64 => "I64",
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown safetensors dtype"),
    };

    /// <summary>Parses a header dtype name, case-sensitively as the format spells it.</summary>
    public static bool TryParse(string name, out SafeTensorsDType t)
    {
        switch (name)
        {
            case "F64": t = SafeTensorsDType.F64; return true;
            case "F32": t = SafeTensorsDType.F32; return true;
            case "BF16": t = SafeTensorsDType.BF16; return true;
            case "F16": t = SafeTensorsDType.F16; return true;
            case "I32": t = SafeTensorsDType.I32; return true;
            case "I64": t = SafeTensorsDType.I64; return true;
            default: t = default; return false;
        }
    }
}
