using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>Validation shared by the layers; every message names the values at fault.</summary>
internal static class Check
{
    /// <summary>value / parts, or an <see cref="ArgumentException"/> naming both when parts does not divide value.</summary>
    public static int Divide(int value, int parts, string what, string partsWhat = "tensor-parallel size")
    {
        if (value <= 0)
        {
            throw new ArgumentOutOfRangeException(what, value, $"{what} must be positive");
        }
        if (value % parts != 0)
        {
            throw new ArgumentException($"{what} {value} is not divisible by {partsWhat} {parts}");
        }
        return value / parts;
    }

    /// <summary>Rows of the token-sharded activations: tokens / TP with sequence parallelism, else tokens.</summary>
    public static int SequenceRows(TokenShape shape, bool sequenceParallel, int tensorParallelSize, string layer) =>
        sequenceParallel
            ? Divide(shape.Tokens, tensorParallelSize, $"{layer}: tokens ({shape})", "tensor-parallel size (sequence parallelism)")
            : shape.Tokens;

    /// <summary>Throws unless <paramref name="tensor"/> holds rows x cols elements of <paramref name="dtype"/>.</summary>
    public static void Matrix(Tensor tensor, DType dtype, long rows, long cols, string layer, string what)
    {
        ArgumentNullException.ThrowIfNull(tensor, what);
        if (tensor.DType != dtype || tensor.Count != rows * cols)
        {
            throw new ArgumentException(
                $"{layer}: {what} has {tensor.Count} elements of {tensor.DType}; expected {rows} x {cols} = {rows * cols} of {dtype}",
                what);
        }
    }

    /// <summary>Throws when backward is called before forward.</summary>
    public static void ForwardDone(bool done, string layer)
    {
        if (!done)
        {
            throw new InvalidOperationException($"{layer}: backward called before forward");
        }
    }
}
