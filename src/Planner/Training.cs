namespace ModelParallel.Planner;

/// <summary>Element type of weights and activations.</summary>
public enum Precision
{
    /// <summary>Mixed precision: bf16 weights, gradients and activations, fp32 master weights in the optimizer.</summary>
    Bf16,

    /// <summary>Mixed precision with fp16 instead of bf16: the same bytes as <see cref="Bf16"/>.</summary>
    Fp16,

    /// <summary>Everything fp32; the optimizer needs no master copy.</summary>
    Fp32,
}

public enum OptimizerKind
{
    /// <summary>Adam/AdamW: two fp32 moments per parameter.</summary>
    Adam,

    /// <summary>SGD with momentum: one fp32 moment per parameter.</summary>
    Sgd,
}

/// <summary>Activation recomputation (Korthikanti et al. 2022).</summary>
public enum Recompute
{
    None,

    /// <summary>Recompute the attention core (scores, softmax, dropout, attention over V) in backward.</summary>
    Selective,

    /// <summary>Keep only each layer's input and recompute the whole layer in backward.</summary>
    Full,
}

/// <summary>How attention is computed, which decides whether the s x s scores are kept for backward.</summary>
public enum AttentionKind
{
    /// <summary>Flash-style attention (this library's kernel): keeps one fp32 log-sum-exp per head and token, no scores.</summary>
    Flash,

    /// <summary>Scores materialised: the softmax output (and dropout mask and output) of a x s x s per sequence are kept.</summary>
    Materialized,
}

/// <summary>How the model is trained: batch, precision, optimizer, memory savers, and the planner's efficiency assumptions.</summary>
public sealed record TrainingSpec
{
    /// <summary>Sequences per optimizer step, over all data-parallel ranks.</summary>
    public required int GlobalBatch { get; init; }

    public Precision Precision { get; init; } = Precision.Bf16;

    /// <summary>Whether gradients are accumulated in fp32 whatever the precision (Megatron's main_grad, this library's CUDA backend).</summary>
    public bool Fp32Gradients { get; init; }

    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;

    /// <summary>0: nothing sharded; 1: optimizer states; 2: and gradients; 3: and parameters (Rajbhandari et al. 2020).</summary>
    public int ZeroStage { get; init; }

    /// <summary>Split norms, dropout and the residual stream along the sequence over the TP ranks (Korthikanti et al. 2022).</summary>
    public bool SequenceParallel { get; init; }

    public Recompute Recompute { get; init; } = Recompute.None;

    public AttentionKind Attention { get; init; } = AttentionKind.Flash;

    /// <summary>Fraction of the peak FLOP/s the GEMMs and attention reach (a model FLOPs utilisation with no communication or bubble).</summary>
    public double ComputeEfficiency { get; init; } = 0.5;

    /// <summary>Fraction of the link bandwidth collectives and sends reach (NCCL bus bandwidth over link bandwidth).</summary>
    public double CommunicationEfficiency { get; init; } = 0.8;

    /// <summary>Fraction of GPU memory kept back for the CUDA context, NCCL and cuBLAS workspaces and allocator fragmentation.</summary>
    public double MemoryReserveFraction { get; init; } = 0.1;

    /// <summary>Bytes of one weight or activation element.</summary>
    public int ElementBytes => Precision == Precision.Fp32 ? 4 : 2;

    /// <summary>Bytes of one gradient element: the element size (the ZeRO paper's accounting), or 4 with <see cref="Fp32Gradients"/>.</summary>
    public int GradientBytes => Fp32Gradients ? 4 : ElementBytes;

    /// <summary>Optimizer bytes per parameter: fp32 master copy (mixed precision only) plus one or two fp32 moments.</summary>
    public int OptimizerBytes =>
        (Precision == Precision.Fp32 ? 0 : 4) + (Optimizer == OptimizerKind.Adam ? 8 : 4);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first value that is not usable.</summary>
    public void Validate()
    {
        if (GlobalBatch <= 0)
        {
            throw new ArgumentException($"global batch must be positive (got {GlobalBatch})");
        }
        if (ZeroStage is < 0 or > 3)
        {
            throw new ArgumentException($"ZeRO stage must be 0, 1, 2 or 3 (got {ZeroStage})");
        }
        Fraction(ComputeEfficiency, "compute efficiency", allowZero: false);
        Fraction(CommunicationEfficiency, "communication efficiency", allowZero: false);
        Fraction(MemoryReserveFraction, "memory reserve fraction", allowZero: true);
    }

    private static void Fraction(double value, string name, bool allowZero)
    {
        if (!(allowZero ? value >= 0 && value < 1 : value > 0 && value <= 1))
        {
            throw new ArgumentException($"{name} must be in {(allowZero ? "[0, 1)" : "(0, 1]")} (got {value})");
        }
    }
}
