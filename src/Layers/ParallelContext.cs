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
