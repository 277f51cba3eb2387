namespace ModelParallel.Layers;

/// <summary>
/// Megatron's fused QKV layout: the full weight's rows are, for each query group g in turn, the group's
/// query heads, then its key head, then its value head ((heads + 2 kvHeads) * headDim rows). With
/// kvHeads divisible by TP each rank holds whole groups; with TP divisible by kvHeads (GQA with fewer key/value
/// heads than ranks) each group is held by TP / kvHeads replicas, each with its share of the group's query
/// heads and a copy of the group's key and value heads. Locally the rows keep the same per-group order.
/// </summary>
internal sealed class QueryGroupLayout
{
    /// <param name="headDim">Width of one head (Megatron's kv_channels); hidden size / heads when null.</param>
    public QueryGroupLayout(string layer, int hiddenSize, int heads, int kvHeads, int? headDim, int tensorParallelSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvHeads);
        if (headDim is { } explicitDim)
        {
            if (explicitDim <= 0 || explicitDim % 2 != 0)
            {
                throw new ArgumentException($"{layer}: head dimension {explicitDim} must be positive and even for rotary embeddings");
            }
            HeadDim = explicitDim;
        }
        else
        {
            HeadDim = Check.Divide(hiddenSize, heads, $"{layer}: hidden size", "attention heads");
            if (HeadDim % 2 != 0)
            {
                throw new ArgumentException($"{layer}: head dimension {HeadDim} (hidden size {hiddenSize} / heads {heads}) must be even for rotary embeddings");
            }
        }
        QueryHeadsPerGroup = Check.Divide(heads, kvHeads, $"{layer}: attention heads", "key/value heads");
        LocalHeads = Check.Divide(heads, tensorParallelSize, $"{layer}: attention heads");
        if (kvHeads % tensorParallelSize != 0 && tensorParallelSize % kvHeads != 0)
        {
            throw new ArgumentException(
                $"{layer}: key/value heads {kvHeads} and tensor-parallel size {tensorParallelSize}: one must divide the other");
        }
        Heads = heads;
        KvHeads = kvHeads;
        LocalGroups = Math.Max(kvHeads / tensorParallelSize, 1);
        Replicas = Math.Max(tensorParallelSize / kvHeads, 1);
        LocalQueryHeadsPerGroup = LocalHeads / LocalGroups;
    }

    public int Heads { get; }

    public int KvHeads { get; }

    public int HeadDim { get; }

    public int QueryHeadsPerGroup { get; }

    /// <summary>Query heads on one rank.</summary>
    public int LocalHeads { get; }

    /// <summary>Key/value heads (query groups) on one rank.</summary>
    public int LocalGroups { get; }

    public int LocalQueryHeadsPerGroup { get; }

    /// <summary>Ranks holding each key/value head: 1 unless TP exceeds the key/value heads.</summary>
    public int Replicas { get; }

    public int FullRows => (Heads + 2 * KvHeads) * HeadDim;

    public int LocalRows => (LocalHeads + 2 * LocalGroups) * HeadDim;

    /// <summary>Local rows of one query group: its query heads, key head, value head.</summary>
    public int LocalGroupRows => (LocalQueryHeadsPerGroup + 2) * HeadDim;

    /// <summary>The query group of rank <paramref name="rank"/>'s key/value heads when they are replicated.</summary>
    public int ReplicaGroupOf(int rank) => rank / Replicas;

    /// <summary>Rows of the full weight that rank <paramref name="rank"/> holds, in local order.</summary>
    public int[] RowsOf(int rank)
    {
        int fullGroupRows = (QueryHeadsPerGroup + 2) * HeadDim;
        if (Replicas == 1)
        {
            return Enumerable.Range(rank * LocalGroups * fullGroupRows, LocalGroups * fullGroupRows).ToArray();
        }
        int groupStart = ReplicaGroupOf(rank) * fullGroupRows;
        int queryStart = groupStart + rank % Replicas * LocalHeads * HeadDim;
        int kvStart = groupStart + QueryHeadsPerGroup * HeadDim;
        return [.. Enumerable.Range(queryStart, LocalHeads * HeadDim), .. Enumerable.Range(kvStart, 2 * HeadDim)];
    }
}
