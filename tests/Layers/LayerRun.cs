using ModelParallel.Layers;

namespace ModelParallel.Tests.Layers;

/// <summary>What one rank saw in one forward and backward: its output and input gradient (its own shard),
/// every full parameter gradient, and the collectives of each phase.</summary>
internal sealed record LayerRun(
    double[] Output,
    double[] InputGrad,
    Dictionary<string, double[]> Grads,
    CommunicationSummary Forward,
    CommunicationSummary Backward,
    CommunicationSummary GradientSync);
