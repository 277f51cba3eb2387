namespace ModelParallel.Layers;

/// <summary>Kinds of collective a layer issues.</summary>
public enum CollectiveKind
{
    AllReduce,
    AllGather,
    ReduceScatter,
}
