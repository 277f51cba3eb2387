namespace ModelParallel.Training.Pipeline;

/// <summary>
/// How the transformer layers of a model are split over the pipeline's stages (ranks x virtual stages, in stage
/// order): stage s holds layers [<see cref="FirstLayer"/>(s), <see cref="FirstLayer"/>(s) + <see cref="LayerCounts"/>[s]).
/// The embedding is on stage 0, the final norm, output layer and loss on the last stage.
/// </summary>
public sealed class PipelineLayout
{
    private readonly int[] _first;

    private PipelineLayout(int[] counts)
    {
        LayerCounts = counts;
        _first = new int[counts.Length];
        for (int s = 1; s < counts.Length; s++)
        {
            _first[s] = _first[s - 1] + counts[s - 1];
        }
    }

    /// <summary>Layers of each stage.</summary>
    public IReadOnlyList<int> LayerCounts { get; }

    public int Stages => LayerCounts.Count;

    public int FirstLayer(int stage) => _first[stage];

    /// <summary>The same number of layers on each of <paramref name="stages"/> stages; throws naming both numbers unless it divides.</summary>
    public static PipelineLayout Even(int layers, int stages)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(stages);
        if (layers <= 0 || layers % stages != 0)
        {
            throw new ArgumentException(
                $"{layers} layers do not split evenly over {stages} pipeline stages (ranks x virtual stages); give a layout with per-stage counts");
        }
        return new PipelineLayout(Enumerable.Repeat(layers / stages, stages).ToArray());
    }

    /// <summary>
    /// Explicit per-stage layer counts (the ends may hold fewer layers to make room for the embedding and the output
    /// layer); they must sum to <paramref name="layers"/>, and only the first and last stage may be empty.
    /// </summary>
    public static PipelineLayout Explicit(IReadOnlyList<int> counts, int layers, int stages)
    {
        ArgumentNullException.ThrowIfNull(counts);
        if (counts.Count != stages)
        {
            throw new ArgumentException(
                $"pipeline layout [{string.Join(",", counts)}] has {counts.Count} stages; the pipeline has {stages} (ranks x virtual stages)");
        }
        if (counts.Sum() != layers)
        {
            throw new ArgumentException($"pipeline layout [{string.Join(",", counts)}] sums to {counts.Sum()} layers; the model has {layers}");
        }
        for (int s = 0; s < counts.Count; s++)
        {
            bool end = s == 0 || s == counts.Count - 1;
            if (counts[s] < 0 || (counts[s] == 0 && !end))
            {
                throw new ArgumentException(
                    $"pipeline layout [{string.Join(",", counts)}]: stage {s} has {counts[s]} layers; a middle stage needs at least 1, an end stage at least 0");
            }
        }
        return new PipelineLayout([.. counts]);
    }

    public override string ToString() => $"[{string.Join(",", LayerCounts)}]";
}
