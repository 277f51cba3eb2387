using System.Globalization;
using System.Numerics;

namespace ModelParallel.Cli;

/// <summary>
/// A verb's options: "--name value" pairs and bare flags, read by name and type. A value never starts with "--",
/// so an option given without one is reported when it is read. Every option given must be read before
/// <see cref="RejectUnknown"/>, or that reports it. A getter returns null for an option that is absent; the verb
/// decides what is required and words that error itself. Bad input throws <see cref="ArgumentException"/> naming
/// the option and its value; <c>mp</c> prints the message and exits with 2.
/// </summary>
internal sealed class CommandLine
{
    private readonly Dictionary<string, string?> values = new(StringComparer.Ordinal);
    private readonly HashSet<string> read = new(StringComparer.Ordinal);

    /// <summary>The flags every verb accepts to print its usage.</summary>
    public static IReadOnlyCollection<string> HelpFlags { get; } = ["--help", "-h"];

    /// <summary>Whether <c>--help</c> or <c>-h</c> is given; marks both read.</summary>
    public bool HelpRequested() => Has("--help") | Has("-h");

    /// <summary>The program and its arguments after the options (<see cref="ParseBeforeProgram"/>); empty otherwise.</summary>
    public IReadOnlyList<string> Program { get; private set; } = [];

    /// <summary>
    /// Every argument is an option, one of the value-less <paramref name="flags"/>, or an option's value. An option
    /// given twice is an error, or, with <paramref name="laterOverrides"/>, the later one counts (so that options
    /// appended to a command line change it).
    /// </summary>
    public static CommandLine Parse(IReadOnlyList<string> args, IReadOnlyCollection<string> flags, bool laterOverrides)
    {
        var line = new CommandLine();
        for (int i = 0; i < args.Count; i++)
        {
            if (!args[i].StartsWith('-'))
            {
                throw new ArgumentException($"unexpected argument '{args[i]}' (options start with --)");
            }
            i = line.Add(args, i, flags, laterOverrides);
        }
        return line;
    }

    /// <summary>
    /// Options (each taking a value, each at most once) up to <c>--</c> or the first argument that does not start
    /// with <c>--</c>; the arguments after them are <see cref="Program"/>.
    /// </summary>
    public static CommandLine ParseBeforeProgram(IReadOnlyList<string> args)
    {
        var line = new CommandLine();
        int i = 0;
        for (; i < args.Count && args[i].StartsWith("--", StringComparison.Ordinal); i++)
        {
            if (args[i] == "--")
            {
                i++;
                break;
            }
            i = line.Add(args, i, [], laterOverrides: false);
        }
        line.Program = [.. args.Skip(i)];
        return line;
    }

    /// <summary>Whether the option or flag is given; marks it read.</summary>
    public bool Has(string name)
    {
        read.Add(name);
        return values.ContainsKey(name);
    }

    public string? String(string name) =>
        Has(name) ? values[name] ?? throw new ArgumentException($"option {name} needs a value") : null;

    public int? Int(string name, int min = int.MinValue) => Integer(name, min);

    public long? Long(string name, long min = long.MinValue) => Integer(name, min);

    public double? Double(string name) => String(name) is { } s
        ? double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v
            : throw new ArgumentException($"{name} needs a number (got '{s}')")
        : null;

    public IReadOnlyList<int>? IntList(string name) => String(name) is { } s
        ? [.. s.Split(',').Select(part => int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v
            : throw new ArgumentException($"{name} needs integers separated by commas (got '{s}')"))]
        : null;

    /// <summary>A member of <typeparamref name="T"/> by its name in any case; a number is not a name.</summary>
    public T? Enum<T>(string name) where T : struct, Enum => String(name) is { } s
        ? System.Enum.TryParse<T>(s, ignoreCase: true, out var v) && System.Enum.IsDefined(v) && !char.IsDigit(s[0]) ? v
            : throw new ArgumentException($"{name} must be one of {string.Join(", ", System.Enum.GetNames<T>().Select(n => n.ToLowerInvariant()))} (got '{s}')")
        : null;

    /// <summary>Throws for the first option given that was never read, with the verb's <paramref name="message"/> for it.</summary>
    public void RejectUnknown(Func<string, string> message)
    {
        if (values.Keys.FirstOrDefault(name => !read.Contains(name)) is { } unknown)
        {
            throw new ArgumentException(message(unknown));
        }
    }

    private T? Integer<T>(string name, T min) where T : struct, IBinaryInteger<T>
    {
        if (String(name) is not { } s)
        {
            return null;
        }
        if (!T.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out T value))
        {
            throw new ArgumentException($"{name} needs an integer (got '{s}')");
        }
        return value >= min ? value : throw new ArgumentException($"{name} must be at least {min} (got {value})");
    }

    /// <summary>Adds the option at <paramref name="i"/> and its value; returns the index of the last argument used.</summary>
    private int Add(IReadOnlyList<string> args, int i, IReadOnlyCollection<string> flags, bool laterOverrides)
    {
        string name = args[i];
        if (!laterOverrides && values.ContainsKey(name))
        {
            throw new ArgumentException($"option {name} is given twice");
        }
        bool hasValue = !flags.Contains(name) && i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal);
        values[name] = hasValue ? args[i + 1] : null;
        return hasValue ? i + 1 : i;
    }
}
