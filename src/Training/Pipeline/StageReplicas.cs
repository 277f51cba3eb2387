using ModelParallel.Layers;

namespace ModelParallel.Training.Pipeline;

/// <summary>
/// The instances of one pipeline stage on this rank: the owner, which makes the parameters, and replicas sharing them
/// (<see cref="ParallelContext.ShareParameters"/>), one per further micro-batch in flight, each keeping its own
/// activations. A replica is made when a forward finds every instance busy and disposed as soon as its micro-batch is
/// done, so the activations held follow the schedule's micro-batches in flight and <see cref="PeakInstances"/> is their
/// peak for this stage.
/// </summary>
internal sealed class StageReplicas : IDisposable
{
    private readonly Func<GptStage?, GptStage> _create;
    private readonly Dictionary<int, GptStage> _busy = [];
    private bool _ownerBusy;

    /// <param name="create">Makes an instance; its argument is the owner for a replica, null for the owner itself.</param>
    public StageReplicas(Func<GptStage?, GptStage> create)
    {
        _create = create;
        Owner = create(null);
    }

    public GptStage Owner { get; }

    /// <summary>The most instances (micro-batches of this stage) alive at once so far.</summary>
    public int PeakInstances { get; private set; } = 1;

    /// <summary>An idle instance for <paramref name="microBatch"/>'s forward.</summary>
    public GptStage Rent(int microBatch)
    {
        if (_busy.ContainsKey(microBatch))
        {
            throw new InvalidOperationException($"stage {Owner.Stage}: micro-batch {microBatch} is already in flight");
        }
        GptStage stage;
        if (!_ownerBusy)
        {
            stage = Owner;
            _ownerBusy = true;
        }
        else
        {
            using (Owner.Context.ShareParameters(Owner.Parameters))
            {
                stage = _create(Owner);
            }
        }
        _busy[microBatch] = stage;
        PeakInstances = Math.Max(PeakInstances, _busy.Count);
        return stage;
    }

    /// <summary>The instance that ran <paramref name="microBatch"/>'s forward.</summary>
    public GptStage Of(int microBatch) => _busy.TryGetValue(microBatch, out var stage)
        ? stage
        : throw new InvalidOperationException($"stage {Owner.Stage}: micro-batch {microBatch} has no forward in flight");

    /// <summary><paramref name="microBatch"/> is done: the owner becomes idle, a replica is disposed (its activations freed).</summary>
    public void Release(int microBatch)
    {
        var stage = Of(microBatch);
        _busy.Remove(microBatch);
        if (ReferenceEquals(stage, Owner))
        {
            _ownerBusy = false;
        }
        else
        {
            stage.Dispose();
        }
    }

    /// <summary>Disposes the replicas still alive first, so the owner frees the shared parameters last.</summary>
    public void Dispose()
    {
        foreach (var stage in _busy.Values.Where(s => !ReferenceEquals(s, Owner)))
        {
            stage.Dispose();
        }
        _busy.Clear();
        Owner.Dispose();
    }
}
