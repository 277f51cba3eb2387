namespace ModelParallel.Layers;

/// <summary>
/// One collective issued by a layer. <see cref="Bytes"/> is the size of the full (unsharded) tensor:
/// the buffer of an all-reduce, the output of an all-gather, the input of a reduce-scatter
/// (the sizes nccl-tests reports).
/// </summary>
public readonly record struct CollectiveRecord(string Source, CommunicationPhase Phase, CollectiveKind Kind, long Bytes);
