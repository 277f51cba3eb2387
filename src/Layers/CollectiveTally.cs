namespace ModelParallel.Layers;

/// <summary>How many collectives of one kind, and their bytes in total.</summary>
public readonly record struct CollectiveTally(int Count, long Bytes);
