using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// What every layer of one rank shares: the backend, the tensor-parallel group, whether sequence
/// parallelism is on, the seed of the master weights and the log of the collectives the layers issue.
/// The context does not own the backend or the communicator.
/// </summary>
public sealed class ParallelContext
{
    public ParallelContext(IBackend backend, ICommunicator tensorParallel, bool sequenceParallel = false, int seed = 1234)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(tensorParallel);
        Backend = backend;
        TensorParallel = tensorParallel;
        SequenceParallel = sequenceParallel;
        Seed = seed;
    }

    public IBackend Backend { get; }

    public IKernels Kernels => Backend.Kernels;

    /// <summary>The tensor-parallel group; its size is the TP degree.</summary>
    public ICommunicator TensorParallel { get; }

    public int TensorParallelSize => TensorParallel.Size;

    public int TensorParallelRank => TensorParallel.Rank;

    /// <summary>Norms and residuals run on token shards ([tokens / TP, hidden]); the TP all-reduces become
    /// all-gather / reduce-scatter pairs along the token dimension.</summary>
    public bool SequenceParallel { get; }

    /// <summary>Seed of the master weights: parameter p starts as the slice of a full weight generated from (seed, p's name).</summary>
    public int Seed { get; }

    public CommunicationLog Log { get; } = new();

    private Dictionary<string, Parameter>? _shared;

    /// <summary>
    /// While the returned scope is open, layers built with this context take their parameters from
    /// <paramref name="parameters"/> by name (sharing weights and gradients; every parameter a layer makes must be
    /// there) instead of making new ones: replicas of a layer that keep their own activations, e.g. one per
    /// micro-batch in flight in a pipeline. A shared parameter is freed when the last layer holding it is disposed.
    /// </summary>
    public IDisposable ShareParameters(IEnumerable<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (_shared is not null)
        {
            throw new InvalidOperationException("parameters are already being shared: close that scope first");
        }
        _shared = parameters.ToDictionary(p => p.Name);
        return new SharingScope(this);
    }

    /// <summary>The parameter to share under <paramref name="name"/>, or null outside a sharing scope.</summary>
    internal Parameter? SharedParameter(string name)
    {
        if (_shared is null)
        {
            return null;
        }
        return _shared.TryGetValue(name, out var p)
            ? p
            : throw new ArgumentException($"{name}: no parameter of that name to share (the replica differs from its original)");
    }

    private sealed class SharingScope(ParallelContext context) : IDisposable
    {
        public void Dispose() => context._shared = null;
    }

    /// <summary>All-reduce over <paramref name="group"/> in place, recorded in the log.</summary>
    internal void AllReduce(ICommunicator group, Tensor tensor, ReduceOp op, string source, CommunicationPhase phase)
    {
        Log.Record(source, phase, CollectiveKind.AllReduce, tensor.Bytes);
        group.AllReduce(tensor, tensor, op);
    }

    /// <summary>All-gather over the tensor-parallel group, recorded in the log.</summary>
    internal void AllGather(Tensor send, Tensor recv, string source, CommunicationPhase phase)
    {
        Log.Record(source, phase, CollectiveKind.AllGather, recv.Bytes);
        TensorParallel.AllGather(send, recv);
    }

    /// <summary>Reduce-scatter (sum) over the tensor-parallel group, recorded in the log.</summary>
    internal void ReduceScatter(Tensor send, Tensor recv, string source, CommunicationPhase phase)
    {
        Log.Record(source, phase, CollectiveKind.ReduceScatter, send.Bytes);
        TensorParallel.ReduceScatter(send, recv);
    }
}
