namespace ModelParallel.Layers;

/// <summary>
/// A layer with a name, its context and its parameters (its own and those of the layers inside it).
/// Each layer also has an explicit forward, and a backward that uses what forward kept and accumulates
/// parameter gradients; their signatures differ from layer to layer. The layers with weight GEMMs (the linear
/// layers, the embedding, and the layers and model built of them) also split backward for zero-bubble pipeline
/// schedules: <c>Backward(dy, deferWeightGradients: true)</c> computes the input gradient and leaves the weight
/// gradients for <c>BackwardWeights()</c>; the plain <c>Backward(dy)</c> runs both parts at once.
/// </summary>
public interface IParallelLayer : IDisposable
{
    /// <summary>Dotted path of the layer; its parameters' names and its log records start with it.</summary>
    string Name { get; }

    ParallelContext Context { get; }

    IReadOnlyList<Parameter> Parameters { get; }
}
