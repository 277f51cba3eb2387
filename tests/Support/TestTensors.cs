using ModelParallel.Runtime;

namespace ModelParallel.Tests.Support;

/// <summary>Tensors made from host arrays, poisoned tensors, and their values read back, on any backend.</summary>
internal static class TestTensors
{
    /// <summary>A new tensor of <paramref name="dtype"/> (the backend's compute dtype when null) holding <paramref name="values"/>.</summary>
    public static Tensor Upload(IBackend backend, double[] values, DType? dtype = null)
    {
        var tensor = backend.Allocate(dtype ?? backend.Compute, values.Length);
        backend.Upload(tensor, values);
        return tensor;
    }

    public static Tensor UploadInts(IBackend backend, int[] values)
    {
        var tensor = backend.Allocate(DType.Int32, values.Length);
        backend.Upload(tensor, values);
        return tensor;
    }

    /// <summary>A tensor filled with NaN, so that an element a kernel or collective fails to write shows up.</summary>
    public static Tensor Poisoned(IBackend backend, long count, DType? dtype = null)
    {
        var tensor = backend.Allocate(dtype ?? backend.Compute, count);
        backend.Kernels.Fill(tensor, double.NaN);
        return tensor;
    }

    /// <summary>The tensor's values, read through the backend that holds it.</summary>
    public static double[] Download(Tensor tensor)
    {
        var values = new double[tensor.Count];
        tensor.Backend.Download(tensor, values);
        return values;
    }
}
