namespace ModelParallel.Planner;

/// <summary>
/// One way to lay a model over the cluster: tensor-parallel degree <see cref="Tp"/>, pipeline stages
/// <see cref="Pp"/> (each with <see cref="VirtualStages"/> interleaved model chunks), data-parallel degree
/// <see cref="Dp"/>, and the sequences per microbatch. Layers split evenly over the stages unless
/// <see cref="LayerSplit"/> gives each stage's count.
/// </summary>
public sealed record ParallelLayout(int Tp, int Pp, int Dp, int MicroBatch, int VirtualStages = 1, IReadOnlyList<int>? LayerSplit = null)
{
    /// <summary>TP x PP x DP in 64 bits: a layout given by hand may be far off the cluster.</summary>
    public long Gpus => (long)Tp * Pp * Dp;

    /// <summary>Microbatches each pipeline runs per step: global batch / (DP x micro batch).</summary>
    public int Microbatches(TrainingSpec training) => (int)(training.GlobalBatch / ((long)Dp * MicroBatch));

    /// <summary>Layers held by pipeline stage <paramref name="stage"/> (over all its virtual chunks).</summary>
    public int LayersOnStage(ModelSpec model, int stage) => LayerSplit is null ? model.Layers / Pp : LayerSplit[stage];

    public override string ToString() =>
        $"TP={Tp} PP={Pp} DP={Dp} micro batch {MicroBatch}"
        + (VirtualStages > 1 ? $" virtual stages {VirtualStages}" : "")
        + (LayerSplit is null ? "" : $" layers {string.Join(",", LayerSplit)}");

    /// <summary>Throws <see cref="ArgumentException"/> with <see cref="Problem"/> when the layout is not valid.</summary>
    public void Validate(ModelSpec model, ClusterSpec cluster, TrainingSpec training)
    {
        var problem = Problem(model, cluster, training);
        if (problem is not null)
        {
            throw new ArgumentException(problem);
        }
    }

    /// <summary>Why this layout cannot run the model on the cluster, naming the numbers; null when it can.</summary>
    public string? Problem(ModelSpec model, ClusterSpec cluster, TrainingSpec training) =>
        DegreeProblem(Tp, "TP") ?? DegreeProblem(Pp, "PP") ?? DegreeProblem(Dp, "DP")
        ?? DegreeProblem(MicroBatch, "micro batch") ?? DegreeProblem(VirtualStages, "virtual stages")
        ?? TensorProblem(model, cluster, Tp)
        ?? PipelineProblem(model, Pp, LayerSplit)
        ?? (Gpus != cluster.TotalGpus ? $"TP {Tp} x PP {Pp} x DP {Dp} = {Gpus} GPUs, but the cluster has {cluster.TotalGpus}" : null)
        ?? (training.GlobalBatch % ((long)Dp * MicroBatch) != 0
            ? $"global batch {training.GlobalBatch} is not a multiple of DP {Dp} x micro batch {MicroBatch} = {(long)Dp * MicroBatch}"
            : null)
        ?? InterleavingProblem(model, training);

    /// <summary>Why <paramref name="tp"/> cannot shard the model inside a node of the cluster; null when it can.</summary>
    public static string? TensorProblem(ModelSpec model, ClusterSpec cluster, int tp) =>
        tp > cluster.GpusPerNode ? $"TP {tp} exceeds the {cluster.GpusPerNode} GPUs per node (a TP group stays inside a node)"
        : cluster.GpusPerNode % tp != 0 ? $"TP {tp} does not divide the {cluster.GpusPerNode} GPUs per node, so a TP group would span two nodes"
        : model.Heads % tp != 0 ? $"TP {tp} does not divide the {model.Heads} attention heads"
        : model.KvHeads % tp != 0 ? $"TP {tp} does not divide the {model.KvHeads} kv heads"
        : model.Ffn % tp != 0 ? $"TP {tp} does not divide the ffn width {model.Ffn}"
        : null;

    /// <summary>Why <paramref name="pp"/> stages cannot hold the layers; null when they can.</summary>
    public static string? PipelineProblem(ModelSpec model, int pp, IReadOnlyList<int>? split)
    {
        if (split is null)
        {
            return model.Layers % pp != 0
                ? $"PP {pp} does not divide the {model.Layers} layers (give an explicit layer split for uneven stages)"
                : null;
        }
        if (split.Count != pp)
        {
            return $"the layer split {string.Join(",", split)} has {split.Count} stages, but PP is {pp}";
        }
        if (split.Any(n => n <= 0))
        {
            return $"the layer split {string.Join(",", split)} has a stage without layers";
        }
        return split.Sum() != model.Layers
            ? $"the layer split {string.Join(",", split)} sums to {split.Sum()}, but the model has {model.Layers} layers"
            : null;
    }

    private string? InterleavingProblem(ModelSpec model, TrainingSpec training)
    {
        if (VirtualStages == 1)
        {
            return null;
        }
        if (Pp == 1)
        {
            return $"virtual stages {VirtualStages} need pipeline parallelism (PP is 1)";
        }
        if (LayerSplit is not null)
        {
            return "the interleaved schedule needs layers split evenly over the stages, not an explicit split";
        }
        var perStage = model.Layers / Pp;
        if (perStage % VirtualStages != 0)
        {
            return $"virtual stages {VirtualStages} do not divide the {perStage} layers of each stage";
        }
        var m = Microbatches(training);
        return m % Pp != 0
            ? $"the interleaved schedule needs the {m} microbatches to be a multiple of PP {Pp}"
            : null;
    }

    private static string? DegreeProblem(int value, string name) =>
        value <= 0 ? $"{name} must be positive (got {value})" : null;
}
