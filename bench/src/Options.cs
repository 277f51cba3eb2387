using System.Globalization;

namespace ModelParallel.Bench;

/// <summary>--name value pairs and --flags; unknown or malformed values throw naming them.</summary>
public sealed class Options
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                throw new ArgumentException($"unexpected argument '{args[i]}'");
            }
            string name = args[i][2..];
            string? value = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : null;
            o._values[name] = value;
        }
        return o;
    }

    public string? String(string name)
    {
        _read.Add(name);
        return _values.TryGetValue(name, out var v) ? v ?? throw new ArgumentException($"--{name} needs a value") : null;
    }

    public string String(string name, string fallback) => String(name) ?? fallback;

    public bool Flag(string name)
    {
        _read.Add(name);
        return _values.ContainsKey(name);
    }

    public long Long(string name, long fallback)
    {
        string? s = String(name);
        if (s is null)
        {
            return fallback;
        }
        double scale = 1;
        char last = char.ToUpperInvariant(s[^1]);
        if (last is 'K' or 'M' or 'G')
        {
            scale = last == 'K' ? 1024 : last == 'M' ? 1024 * 1024 : 1024L * 1024 * 1024;
            s = s[..^1];
        }
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || v < 0)
        {
            throw new ArgumentException($"--{name}: '{s}' is not a non-negative number");
        }
        return (long)(v * scale);
    }

    public int Int(string name, int fallback) => checked((int)Long(name, fallback));

    /// <summary>Throws when an option was given that the benchmark never read.</summary>
    public void RejectUnknown()
    {
        var unknown = _values.Keys.Where(k => !_read.Contains(k)).ToList();
        if (unknown.Count > 0)
        {
            throw new ArgumentException($"unknown option(s): {string.Join(", ", unknown.Select(k => "--" + k))}");
        }
    }
}
