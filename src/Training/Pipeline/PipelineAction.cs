namespace ModelParallel.Training.Pipeline;

/// <summary>What one step of a pipeline schedule does (torch.distributed.pipelining's computation types).</summary>
public enum ActionKind
{
    /// <summary>F: forward of a stage on a micro-batch.</summary>
    Forward,

    /// <summary>B: the whole backward (input and weight gradients) of a stage on a micro-batch.</summary>
    Backward,

    /// <summary>I: the input-gradient part of the backward; the weight gradients wait for <see cref="BackwardWeight"/>.</summary>
    BackwardInput,

    /// <summary>W: the deferred weight-gradient part of the backward (after its <see cref="BackwardInput"/>).</summary>
    BackwardWeight,

    /// <summary>SEND_F: the stage's output activation to the rank of the next stage.</summary>
    SendActivation,

    /// <summary>RECV_F: the stage's input activation from the rank of the previous stage.</summary>
    RecvActivation,

    /// <summary>SEND_B: the gradient of the stage's input to the rank of the previous stage.</summary>
    SendGradient,

    /// <summary>RECV_B: the gradient of the stage's output from the rank of the next stage.</summary>
    RecvGradient,
}

/// <summary>
/// One action of a pipeline schedule: <see cref="Kind"/> for global stage <see cref="Stage"/> (0 to ranks x virtual
/// stages - 1; stage s runs on rank s mod ranks, Megatron's interleaved assignment) and micro-batch
/// <see cref="MicroBatch"/> (0 to m - 1). Communication actions name the stage whose activation or gradient moves:
/// SEND_F(s) and RECV_F(s + 1) carry stage s's output, SEND_B(s) and RECV_B(s - 1) stage s's input gradient.
/// </summary>
public readonly record struct PipelineAction(ActionKind Kind, int Stage, int MicroBatch)
{
    public bool IsCompute => Kind is ActionKind.Forward or ActionKind.Backward or ActionKind.BackwardInput or ActionKind.BackwardWeight;

    public bool IsCommunication => !IsCompute;

    /// <summary>torch's notation: "F3" style with the stage, e.g. "F(s1,mb3)", "SEND_F(s0,mb2)".</summary>
    public override string ToString() => $"{Code(Kind)}(s{Stage},mb{MicroBatch})";

    public static string Code(ActionKind kind) => kind switch
    {
        ActionKind.Forward => "F",
        ActionKind.Backward => "B",
        ActionKind.BackwardInput => "I",
        ActionKind.BackwardWeight => "W",
        ActionKind.SendActivation => "SEND_F",
        ActionKind.RecvActivation => "RECV_F",
        ActionKind.SendGradient => "SEND_B",
        ActionKind.RecvGradient => "RECV_B",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown action kind"),
    };
}
