using System.Text;

namespace ModelParallel.Tests.Launch;

/// <summary>A writer that several threads may write lines to while a test reads them.</summary>
internal sealed class LineLog : TextWriter
{
    private readonly StringBuilder _text = new();

    public override Encoding Encoding => Encoding.UTF8;

    public override void Write(char value)
    {
        lock (_text)
        {
            _text.Append(value);
        }
    }

    public override void Write(string? value)
    {
        lock (_text)
        {
            _text.Append(value);
        }
    }

    public override void WriteLine(string? value)
    {
        lock (_text)
        {
            _text.Append(value).Append('\n');
        }
    }

    public string[] Lines()
    {
        lock (_text)
        {
            return _text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        }
    }

    public override string ToString() => string.Join('\n', Lines());
}
