using System.Globalization;
using System.Text;

namespace ModelParallel.Training.Pipeline;

/// <summary>
/// Text timelines of a simulation for a CLI: a header line, one line per rank and a legend line. Each line has
/// <c>width</c> columns spanning the makespan; a column shows what its rank does at the column's middle: a compute
/// action as a block starting with its label ("F3" = forward of micro-batch 3; with v &gt; 1 the chunk first: "1F3"),
/// '-' communication, '.' idle.
/// </summary>
public static class ScheduleText
{
    public static string Timeline(SimulationResult result, int width)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (width < 1)
        {
            throw new ArgumentException($"timeline width {width}: must be at least 1");
        }
        var s = result.Schedule;
        double perColumn = result.Makespan / width;
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture,
            $"{result}; one column = {perColumn:0.###} time units\n");
        for (int r = 0; r < s.Ranks; r++)
        {
            var line = new char[width];
            Array.Fill(line, '.');
            foreach (var t in result.Timelines[r].Where(t => t.Action.IsCommunication))
            {
                Paint(line, t, perColumn, "-", fill: '-');
            }
            foreach (var t in result.Timelines[r].Where(t => t.Action.IsCompute))
            {
                string label = (s.VirtualStages > 1 ? s.ChunkOfStage(t.Action.Stage).ToString(CultureInfo.InvariantCulture) : "")
                    + PipelineAction.Code(t.Action.Kind) + t.Action.MicroBatch.ToString(CultureInfo.InvariantCulture);
                Paint(line, t, perColumn, label, fill: ' ');
            }
            text.Append(CultureInfo.InvariantCulture, $"rank {r} |").Append(line).Append("|\n");
        }
        text.Append("bubble of a rank = idle time / compute time (max over ranks, mean in brackets); ")
            .Append("F forward, B backward, I input gradient, W weight gradient, [chunk]kind micro-batch, ")
            .Append("'-' communication, '.' idle\n");
        return text.ToString();
    }

    /// <summary>Columns whose middle falls in [start, end) get the label, then the fill character.</summary>
    private static void Paint(char[] line, TimedAction t, double perColumn, string label, char fill)
    {
        if (perColumn <= 0)
        {
            return;
        }
        int first = Math.Max((int)Math.Ceiling(t.Start / perColumn - 0.5), 0);
        int last = Math.Min((int)Math.Ceiling(t.End / perColumn - 0.5) - 1, line.Length - 1);
        int n = last - first + 1;
        if (n <= 0)
        {
            return;
        }
        string block = n > label.Length ? label + new string(fill, n - label.Length) : label[..n];
        block.CopyTo(0, line, first, n);
    }
}
