namespace ModelParallel.Tests.Planner;

/// <summary>
/// docs/planning.md shows real output: every fenced block that starts with "$ mp plan ..." must be exactly what
/// that command prints now. When the planner changes, run the commands again and paste their output.
/// </summary>
public sealed class PlanningDocTests
{
    [Fact]
    public void EveryCommandInTheDocPrintsWhatTheDocShows()
    {
        var blocks = Blocks(File.ReadAllText(DocPath())).ToList();
        Assert.True(blocks.Count >= 3, $"expected at least 3 mp plan blocks in docs/planning.md, found {blocks.Count}");
        foreach (var (command, shown) in blocks)
        {
            var (_, output) = MpCli.Run(command.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..]);
            Assert.True(Normalize(output) == Normalize(shown), $"docs/planning.md is stale for '{command}'; it now prints:\n{output}");
        }
    }

    private static IEnumerable<(string Command, string Output)> Blocks(string markdown)
    {
        var lines = markdown.Replace("\r\n", "\n").Split('\n');
        for (var i = 0; i < lines.Length - 1; i++)
        {
            if (lines[i] != "```text" || !lines[i + 1].StartsWith("$ mp plan", StringComparison.Ordinal))
            {
                continue;
            }
            var end = Array.IndexOf(lines, "```", i + 2);
            yield return (lines[i + 1][2..], string.Join("\n", lines[(i + 2)..end]));
            i = end;
        }
    }

    private static string Normalize(string text) =>
        string.Join("\n", text.Replace("\r\n", "\n").TrimEnd('\n').Split('\n').Select(l => l.TrimEnd()));

    private static string DocPath()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var path = Path.Combine(dir.FullName, "docs", "planning.md");
            if (File.Exists(path))
            {
                return path;
            }
        }
        throw new FileNotFoundException($"docs/planning.md not found above {AppContext.BaseDirectory}");
    }
}
