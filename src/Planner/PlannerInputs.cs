namespace ModelParallel.Planner;

/// <summary>Everything a plan depends on besides the layout: what is trained, on what, and how.</summary>
public sealed record PlannerInputs(ModelSpec Model, ClusterSpec Cluster, TrainingSpec Training)
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the first unusable value.</summary>
    public void Validate()
    {
        Model.Validate();
        Cluster.Validate();
        Training.Validate();
    }
}
