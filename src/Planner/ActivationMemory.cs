namespace ModelParallel.Planner;

/// <summary>
/// Bytes of activations kept for backward, term by term, after Korthikanti et al. 2022 ("Reducing
/// Activation Recomputation in Large Transformer Models", section 4). With 2-byte elements, a GPT layer
/// with dropout and materialised softmax keeps sbh(34 + 5as/h) bytes; with TP degree t,
/// sbh(10 + 24/t + 5as/(ht)); with TP and sequence parallelism, sbh(34/t + 5as/(ht)). Here every term
/// is written out with its element size, so that GQA (K and V of kvHeads x headDim), SwiGLU (gate, up
/// and their product), the absence of dropout, flash attention (no s x s scores, one fp32 log-sum-exp
/// per head and token) and fp32 elements change exactly the terms they touch. The fp32 per-token norm
/// statistics, which the paper neglects, are kept as their own terms.
/// Symbols: s sequence, b micro batch, h hidden, a heads, kv = kv heads x head dim, f ffn, t TP, V vocab.
/// </summary>
public static class ActivationMemory
{
    private const int StatBytes = 4;

    /// <summary>Bytes one layer keeps for one microbatch under the training's recomputation.</summary>
    public static IReadOnlyList<Term> Layer(ModelSpec m, TrainingSpec training, int tp, int microBatch)
    {
        var shape = new Shape(m, training, tp, microBatch);
        return training.Recompute switch
        {
            Recompute.Full => [shape.Replicated("layer input (the recomputation checkpoint)", shape.E)],
            Recompute.Selective => [.. Attention(shape, keepCore: false), .. Mlp(shape)],
            _ => [.. Attention(shape, keepCore: true), .. Mlp(shape)],
        };
    }

    /// <summary>Bytes one layer keeps for one microbatch when nothing is recomputed: also the working set of a
    /// fully recomputed layer during its backward.</summary>
    public static IReadOnlyList<Term> LayerWithoutRecompute(ModelSpec m, TrainingSpec training, int tp, int microBatch) =>
        Layer(m, training with { Recompute = Recompute.None }, tp, microBatch);

    /// <summary>Bytes the first stage keeps per microbatch besides its layers: the embedding's dropout mask.</summary>
    public static IReadOnlyList<Term> Embedding(ModelSpec m, TrainingSpec training, int tp, int microBatch)
    {
        var shape = new Shape(m, training, tp, microBatch);
        return m.Dropout ? [shape.Replicated("embedding dropout mask", 1)] : [];
    }

    /// <summary>Bytes the last stage keeps for the microbatch in its backward: final norm, output projection input,
    /// fp32 logits of the vocabulary-parallel cross-entropy.</summary>
    public static IReadOnlyList<Term> Output(ModelSpec m, TrainingSpec training, int tp, int microBatch)
    {
        var shape = new Shape(m, training, tp, microBatch);
        return
        [
            shape.Replicated("final norm input", shape.E),
            shape.NormStatistics("final norm statistics"),
            shape.Replicated("output projection input", shape.E),
            shape.Sharded("logits (fp32, cross-entropy)", StatBytes, m.Vocab, "V"),
        ];
    }

    private static IEnumerable<Term> Attention(Shape x, bool keepCore)
    {
        var m = x.Model;
        yield return x.Replicated("norm1 input", x.E);
        yield return x.NormStatistics("norm1 statistics");
        yield return x.Replicated("QKV input (norm1 output)", x.E);
        yield return x.Sharded("Q", x.E, m.Hidden, "h");
        yield return x.Sharded("K and V", 2 * x.E, m.KvWidth, "kv");
        if (keepCore)
        {
            foreach (var term in AttentionCore(x))
            {
                yield return term;
            }
        }
        yield return x.Sharded("attention output (out-projection input)", x.E, m.Hidden, "h");
        if (m.Dropout)
        {
            yield return x.Replicated("attention residual dropout mask", 1);
        }
    }

    /// <summary>What selective recomputation drops: the scores and what is derived from them, or flash attention's log-sum-exp.</summary>
    private static IEnumerable<Term> AttentionCore(Shape x)
    {
        var m = x.Model;
        if (x.Training.Attention == AttentionKind.Flash)
        {
            yield return x.PerHead("softmax log-sum-exp (fp32)", StatBytes, 1, "a s b/t");
            yield break;
        }
        yield return x.PerHead("softmax output", x.E, m.SequenceLength, "a s^2 b/t");
        if (m.Dropout)
        {
            yield return x.PerHead("attention dropout mask", 1, m.SequenceLength, "a s^2 b/t");
            yield return x.PerHead("attention dropout output", x.E, m.SequenceLength, "a s^2 b/t");
        }
    }

    private static IEnumerable<Term> Mlp(Shape x)
    {
        var m = x.Model;
        yield return x.Replicated("norm2 input", x.E);
        yield return x.NormStatistics("norm2 statistics");
        yield return x.Replicated("MLP input (norm2 output)", x.E);
        if (m.Activation == FfnActivation.SwiGlu)
        {
            yield return x.Sharded("gate and up outputs", 2 * x.E, m.Ffn, "f");
            yield return x.Sharded("silu(gate) x up (down-projection input)", x.E, m.Ffn, "f");
        }
        else
        {
            yield return x.Sharded("fc1 output (GeLU input)", x.E, m.Ffn, "f");
            yield return x.Sharded("GeLU output (fc2 input)", x.E, m.Ffn, "f");
        }
        if (m.Dropout)
        {
            yield return x.Replicated("MLP residual dropout mask", 1);
        }
    }

    /// <summary>Sizes of one microbatch on one TP rank, and how each kind of tensor divides over TP.</summary>
    private sealed record Shape(ModelSpec Model, TrainingSpec Training, int Tp, int MicroBatch)
    {
        public int E => Training.ElementBytes;

        private double Tokens => (double)Model.SequenceLength * MicroBatch;

        /// <summary>A [tokens, h] tensor outside the TP regions: whole on every rank, split by sequence parallelism.</summary>
        public Term Replicated(string name, int bytes) => Training.SequenceParallel
            ? Term.Bytes(name, $"{bytes} s b h/t", bytes * Tokens * Model.Hidden / Tp)
            : Term.Bytes(name, $"{bytes} s b h", bytes * Tokens * Model.Hidden);

        /// <summary>A [tokens, width] tensor inside a TP region: split over the ranks by heads or ffn columns.</summary>
        public Term Sharded(string name, int bytes, int width, string symbol) =>
            Term.Bytes(name, $"{bytes} s b {symbol}/t", bytes * Tokens * width / Tp);

        /// <summary>A [heads, tokens, keys] tensor split over the ranks by heads.</summary>
        public Term PerHead(string name, int bytes, int keys, string symbols) =>
            Term.Bytes(name, $"{bytes} {symbols}", bytes * Tokens * Model.Heads * keys / Tp);

        /// <summary>fp32 per-token statistics of a norm: rstd, and the mean for LayerNorm.</summary>
        public Term NormStatistics(string name)
        {
            var perToken = Model.Norm == Normalization.LayerNorm ? 2 * StatBytes : StatBytes;
            return Training.SequenceParallel
                ? Term.Bytes(name, $"{perToken} s b/t", perToken * Tokens / Tp)
                : Term.Bytes(name, $"{perToken} s b", perToken * Tokens);
        }
    }
}
