namespace ModelParallel.Training.Pipeline;

/// <summary>The CLI names of <see cref="ScheduleKind"/>: "gpipe", "1f1b", "interleaved-1f1b", "zb-h1".</summary>
public static class ScheduleKinds
{
    private static readonly (ScheduleKind Kind, string Name)[] Names =
    [
        (ScheduleKind.GPipe, "gpipe"),
        (ScheduleKind.OneFOneB, "1f1b"),
        (ScheduleKind.Interleaved1F1B, "interleaved-1f1b"),
        (ScheduleKind.ZeroBubbleH1, "zb-h1"),
    ];

    /// <summary>Every kind, in declaration order.</summary>
    public static IReadOnlyList<ScheduleKind> All { get; } = [.. Names.Select(n => n.Kind)];

    /// <summary>The CLI name of <paramref name="kind"/>.</summary>
    public static string Name(this ScheduleKind kind)
    {
        foreach (var (k, name) in Names)
        {
            if (k == kind)
            {
                return name;
            }
        }
        throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown schedule kind");
    }

    /// <summary>The kind whose CLI name is <paramref name="name"/> (case-insensitive); throws naming the known names.</summary>
    public static ScheduleKind Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        foreach (var (kind, n) in Names)
        {
            if (string.Equals(n, name.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                return kind;
            }
        }
        throw new ArgumentException(
            $"unknown pipeline schedule '{name}': expected one of {string.Join(", ", Names.Select(n => n.Name))}");
    }
}
