namespace ModelParallel.Planner;

/// <summary>
/// Parameter counts of a <see cref="ModelSpec"/>, GQA-aware: Q and the attention output are h x h,
/// K and V are h x (kvHeads x headDim). Counts split into the part tensor parallelism shards
/// (the column- and row-parallel matrices, the column-parallel biases, the vocabulary) and the part
/// every TP rank replicates (norms, row-parallel biases, learned positions).
/// </summary>
public static class Parameters
{
    /// <summary>Weights of the matrices of one layer: h(h + 2 kv) + h h + (2 or 3) h ffn.</summary>
    public static double LayerMatmul(ModelSpec m) =>
        (double)m.Hidden * (m.Hidden + 2.0 * m.KvWidth) + (double)m.Hidden * m.Hidden + FfnMatrices(m) * (double)m.Hidden * m.Ffn;

    /// <summary>Parameters of one layer that TP shards: the matrices and the column-parallel biases.</summary>
    public static double LayerSharded(ModelSpec m) =>
        LayerMatmul(m) + (m.LinearBiases ? m.Hidden + 2.0 * m.KvWidth + (FfnMatrices(m) - 1.0) * m.Ffn : 0);

    /// <summary>Parameters of one layer every TP rank holds whole: two norms and the row-parallel biases.</summary>
    public static double LayerReplicated(ModelSpec m) => 2 * NormParameters(m) + (m.LinearBiases ? 2.0 * m.Hidden : 0);

    /// <summary>Parameters of one layer on one TP rank.</summary>
    public static double LayerPerRank(ModelSpec m, int tp) => LayerSharded(m) / tp + LayerReplicated(m);

    /// <summary>Token embedding rows (vocab x h), split over TP by vocabulary.</summary>
    public static double Embedding(ModelSpec m) => (double)m.Vocab * m.Hidden;

    /// <summary>Learned position table (seq x h), replicated over TP; zero for rotary positions.</summary>
    public static double Positions(ModelSpec m) => m.LearnedPositions ? (double)m.SequenceLength * m.Hidden : 0;

    /// <summary>Weight (and bias) of one norm.</summary>
    public static double NormParameters(ModelSpec m) => m.Norm == Normalization.LayerNorm ? 2.0 * m.Hidden : m.Hidden;

    /// <summary>Parameters of the model, each shared matrix counted once.</summary>
    public static double Total(ModelSpec m) =>
        m.Layers * (LayerSharded(m) + LayerReplicated(m)) + Embedding(m) + Positions(m) + NormParameters(m)
        + (m.TiedEmbeddings ? 0 : Embedding(m));

    /// <summary>
    /// Parameters one GPU holds on pipeline stage <paramref name="stage"/> of <paramref name="pp"/>, with
    /// <paramref name="layers"/> layers: the first stage adds the embedding (and positions), the last adds
    /// the final norm and the output projection (a copy of a tied embedding when the stages differ).
    /// </summary>
    public static double Stage(ModelSpec m, int tp, int pp, int stage, int layers)
    {
        var total = layers * LayerPerRank(m, tp);
        if (stage == 0)
        {
            total += Embedding(m) / tp + Positions(m);
        }
        if (stage == pp - 1)
        {
            total += NormParameters(m) + (m.TiedEmbeddings && pp == 1 ? 0 : Embedding(m) / tp);
        }
        return total;
    }

    private static int FfnMatrices(ModelSpec m) => m.Activation == FfnActivation.SwiGlu ? 3 : 2;
}
