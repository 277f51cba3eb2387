namespace ModelParallel.Training.Pipeline;

/// <summary>One action of a simulated rank and when it ran: from <see cref="Start"/> to <see cref="End"/>.</summary>
public readonly record struct TimedAction(PipelineAction Action, double Start, double End)
{
    public double Duration => End - Start;

    public override string ToString() => $"{Action} [{Start:0.###}, {End:0.###})";
}
