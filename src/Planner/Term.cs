namespace ModelParallel.Planner;

/// <summary>What a <see cref="Term"/>'s value measures.</summary>
public enum TermUnit
{
    Bytes,
    Seconds,
}

/// <summary>
/// One number the planner computed, with the formula that produced it written out with the
/// numbers substituted ("2 B x 7.5e9 params"), so that every figure in a plan can be checked by hand.
/// </summary>
public sealed record Term(string Name, string Formula, double Value, TermUnit Unit)
{
    public static Term Bytes(string name, string formula, double value) => new(name, formula, value, TermUnit.Bytes);

    public static Term Seconds(string name, string formula, double value) => new(name, formula, value, TermUnit.Seconds);

    /// <summary>The value in its unit ("15.0 GB", "12.3 ms").</summary>
    public string FormattedValue => Unit == TermUnit.Bytes ? Units.Bytes(Value) : Units.Time(Value);
}
