using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// Elements [Offset, Offset + Count) of a parameter's local gradient that every rank of
/// <paramref name="Group"/> holds a partial sum of, to be all-reduced over that group after backward.
/// </summary>
internal sealed record GradientReduction(ICommunicator Group, long Offset, long Count);
