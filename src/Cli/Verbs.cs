namespace ModelParallel.Cli;

/// <summary>A command-line verb of <c>mp</c>.</summary>
public interface IVerb
{
    string Name { get; }

    /// <summary>One line for the usage text.</summary>
    string Summary { get; }

    int Run(string[] args);
}

/// <summary>The verbs <c>mp</c> knows. Add a verb by adding a class and one line here.</summary>
public static class Verbs
{
    public static IReadOnlyList<IVerb> All { get; } =
    [
        new InfoVerb(),
        new LaunchVerb(),
        new LayerVerb(),
        new HfVerb(),
        new PipelineVerb(),
        new PlanVerb(),
        new NcclCheckVerb(),
        new SelfTestVerb(),
    ];

    public static IVerb? Find(string name) => All.FirstOrDefault(v => v.Name == name);

    public static string Usage() =>
        "usage: mp VERB [ARGS]   (mp VERB --help: the verb's options)\n" + string.Join("\n", All.Select(v => $"  {v.Name,-10} {v.Summary}")) +
        "\nexit codes: 0 ok, 1 a check or run failed (a mismatch, a failed rank, CUDA asked for but unusable), 2 bad input" +
        "\nresults go to stdout; errors and diagnostics to stderr";
}
