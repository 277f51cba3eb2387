namespace ModelParallel.Training.Pipeline;

/// <summary>
/// A pipeline schedule as data: for each of <see cref="Ranks"/> pipeline ranks, the list of actions it runs in order,
/// over <see cref="Ranks"/> x <see cref="VirtualStages"/> stages and <see cref="MicroBatches"/> micro-batches. A
/// generator makes the compute actions; communication actions are added to them before execution.
/// </summary>
public sealed record PipelineSchedule(string Name, int Ranks, int VirtualStages, int MicroBatches,
    IReadOnlyList<IReadOnlyList<PipelineAction>> Actions)
{
    /// <summary>Stages in all: ranks x virtual stages.</summary>
    public int Stages => Ranks * VirtualStages;

    /// <summary>The rank that runs stage <paramref name="stage"/>: stage mod ranks.</summary>
    public int RankOfStage(int stage) => stage % Ranks;

    /// <summary>The model chunk (virtual stage) of its rank that stage <paramref name="stage"/> is: stage / ranks.</summary>
    public int ChunkOfStage(int stage) => stage / Ranks;

    /// <summary>Whether the backward is split into input-gradient and weight-gradient actions.</summary>
    public bool SplitsBackward => Actions.Any(a => a.Any(x => x.Kind == ActionKind.BackwardInput));
}
