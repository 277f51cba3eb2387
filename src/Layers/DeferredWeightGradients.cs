namespace ModelParallel.Layers;

/// <summary>
/// Whether a layer's last backward left its weight gradients for later (the split backward of zero-bubble
/// pipeline schedules: the input gradient now, dW += dY^T X and the bias sums when the schedule has room),
/// and the checks that keep what the deferred part reads intact: while weight gradients are pending the
/// layer's buffers holding X and dY must not be overwritten, so a forward or another backward of the layer
/// throws until <c>BackwardWeights</c> has run. Every message names the layer.
/// </summary>
internal sealed class DeferredWeightGradients
{
    private readonly string _layer;

    public DeferredWeightGradients(string layer) => _layer = layer;

    public bool Pending { get; private set; }

    /// <summary>Throws when weight gradients are pending: a forward would overwrite the X they read.</summary>
    public void CheckForward()
    {
        if (Pending)
        {
            throw new InvalidOperationException(
                $"{_layer}: forward called while the weight gradients of a deferred backward are pending; call BackwardWeights first");
        }
    }

    /// <summary>Throws when weight gradients are pending: another backward would overwrite the dY they read.</summary>
    public void CheckBackward()
    {
        if (Pending)
        {
            throw new InvalidOperationException(
                $"{_layer}: backward called while the weight gradients of a deferred backward are pending; call BackwardWeights first");
        }
    }

    /// <summary>Marks the weight gradients of the backward just run as pending.</summary>
    public void Defer() => Pending = true;

    /// <summary>Takes the pending weight gradients, or throws when no deferred backward left any.</summary>
    public void Take()
    {
        if (!Pending)
        {
            throw new InvalidOperationException($"{_layer}: BackwardWeights called with no deferred backward pending");
        }
        Pending = false;
    }
}
