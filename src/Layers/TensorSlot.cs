using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// A buffer a layer owns and reuses from call to call: reallocated (from the backend's caching
/// allocator) only when the size or dtype asked for changes, so steady-state calls allocate nothing.
/// </summary>
internal sealed class TensorSlot : IDisposable
{
    private readonly IBackend _backend;
    private Tensor? _tensor;

    public TensorSlot(IBackend backend) => _backend = backend;

    /// <summary>A tensor of exactly <paramref name="count"/> elements of <paramref name="dtype"/>, contents undefined.</summary>
    public Tensor Get(DType dtype, long count)
    {
        if (_tensor is null || _tensor.DType != dtype || _tensor.Count != count)
        {
            _tensor?.Dispose();
            _tensor = null;
            _tensor = _backend.Allocate(dtype, count);
        }
        return _tensor;
    }

    public void Dispose()
    {
        _tensor?.Dispose();
        _tensor = null;
    }
}
