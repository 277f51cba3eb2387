namespace ModelParallel.Layers;

/// <summary>When a collective was issued.</summary>
public enum CommunicationPhase
{
    Forward,
    Backward,

    /// <summary>After backward, before the optimizer: gradients of parameters that several ranks hold
    /// (sequence-parallel norms, replicated key/value heads) summed across those ranks.</summary>
    GradientSync,
}
