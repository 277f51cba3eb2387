using System.Text.Json;

namespace ModelParallel.Training.Pipeline;

/// <summary>
/// Pipeline timelines as a Chrome trace (the JSON "traceEvents" format Perfetto and chrome://tracing open): one
/// process per pipeline rank, with a compute track and a communication track, one complete event per action.
/// </summary>
public static class ChromeTrace
{
    /// <summary>Writes the timelines (by pipeline rank, times in milliseconds from the step's start) to <paramref name="path"/>.</summary>
    public static void Write(string path, IReadOnlyList<IReadOnlyList<ExecutedAction>> timelines, string title)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(timelines);
        using var stream = File.Create(path);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = false });
        json.WriteStartObject();
        json.WriteString("displayTimeUnit", "ms");
        json.WriteStartArray("traceEvents");
        for (int rank = 0; rank < timelines.Count; rank++)
        {
            Metadata(json, "process_name", rank, 0, $"{title}: pipeline rank {rank}");
            Metadata(json, "thread_name", rank, 0, "compute");
            Metadata(json, "thread_name", rank, 1, "communication");
            foreach (var (action, start, end) in timelines[rank])
            {
                json.WriteStartObject();
                json.WriteString("name", action.ToString());
                json.WriteString("cat", action.IsCompute ? "compute" : "p2p");
                json.WriteString("ph", "X");
                json.WriteNumber("ts", start * 1000);
                json.WriteNumber("dur", Math.Max(end - start, 0) * 1000);
                json.WriteNumber("pid", rank);
                json.WriteNumber("tid", action.IsCompute ? 0 : 1);
                json.WriteStartObject("args");
                json.WriteNumber("stage", action.Stage);
                json.WriteNumber("microBatch", action.MicroBatch);
                json.WriteEndObject();
                json.WriteEndObject();
            }
        }
        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void Metadata(Utf8JsonWriter json, string kind, int pid, int tid, string name)
    {
        json.WriteStartObject();
        json.WriteString("name", kind);
        json.WriteString("ph", "M");
        json.WriteNumber("pid", pid);
        json.WriteNumber("tid", tid);
        json.WriteStartObject("args");
        json.WriteString("name", name);
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
