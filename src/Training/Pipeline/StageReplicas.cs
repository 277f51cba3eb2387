using ModelParallel.Layers;

namespace ModelParallel.Training.Pipeline;

/// <summary>
/// The instances of one pipeline stage on this rank: the owner, which makes the parameters, and replicas sharing them
/// (<see cref="ParallelContext.ShareParameters"/>), one per micro-batch in flight, each keeping its own activations.
/// A replica is made when every instance is busy, so <see cref="Instances"/> ends at the schedule's peak in-flight count.
/// </summary>
internal sealed class StageReplicas : IDisposable
{
    private readonly Func<GptStage?, GptStage> _create;
    private readonly List<GptStage> _all = [];
    private readonly Stack<GptStage> _free = new();
    private readonly Dictionary<int, GptStage> _busy = [];

    /// <param name="create">Makes an instance; its argument is the owner for a replica, null for the owner itself.</param>
    public StageReplicas(Func<GptStage?, GptStage> create)
    {
        _create = create;
        Owner = create(null);
        _all.Add(Owner);
        _free.Push(Owner);
    }

    public GptStage Owner { get; }

    /// <summary>Instances made so far: the most micro-batches this stage held at once.</summary>
    public int Instances => _all.Count;

    /// <summary>An idle instance for <paramref name="microBatch"/>'s forward.</summary>
    public GptStage Rent(int microBatch)
    {
        if (_busy.ContainsKey(microBatch))
        {
            throw new InvalidOperationException($"stage {Owner.Stage}: micro-batch {microBatch} is already in flight");
        }
        if (!_free.TryPop(out var stage))
        {
            using (Owner.Context.ShareParameters(Owner.Parameters))
            {
                stage = _create(Owner);
            }
            _all.Add(stage);
        }
        _busy[microBatch] = stage;
        return stage;
    }

    /// <summary>The instance that ran <paramref name="microBatch"/>'s forward.</summary>
    public GptStage Of(int microBatch) => _busy.TryGetValue(microBatch, out var stage)
        ? stage
        : throw new InvalidOperationException($"stage {Owner.Stage}: micro-batch {microBatch} has no forward in flight");

    /// <summary>Makes <paramref name="microBatch"/>'s instance idle again.</summary>
    public void Release(int microBatch)
    {
        _free.Push(Of(microBatch));
        _busy.Remove(microBatch);
    }

    /// <summary>Disposes the replicas first, so the owner frees the shared parameters last.</summary>
    public void Dispose()
    {
        for (int i = _all.Count - 1; i >= 0; i--)
        {
            _all[i].Dispose();
        }
    }
}
