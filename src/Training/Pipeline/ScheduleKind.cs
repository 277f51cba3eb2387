namespace ModelParallel.Training.Pipeline;

/// <summary>The pipeline schedules <see cref="ScheduleGenerator"/> makes; CLI names in <see cref="ScheduleKinds"/>.</summary>
public enum ScheduleKind
{
    /// <summary>"gpipe": all forwards, then all backwards (Huang et al. 2019; torch's ScheduleGPipe).</summary>
    GPipe,

    /// <summary>"1f1b": warm-up forwards, one forward one backward, cool-down backwards (PipeDream-Flush; Megatron).</summary>
    OneFOneB,

    /// <summary>"interleaved-1f1b": 1F1B over v model chunks per rank in Megatron's order (Narayanan et al. 2021).</summary>
    Interleaved1F1B,

    /// <summary>"zb-h1": 1F1B with the backward split into I and W, W filling the bubbles (Qi et al. 2023).</summary>
    ZeroBubbleH1,
}
