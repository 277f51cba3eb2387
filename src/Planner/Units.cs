using System.Globalization;

namespace ModelParallel.Planner;

/// <summary>
/// How the planner writes numbers: bytes in decimal units (1 GB = 1e9 B, as in the ZeRO paper),
/// times in us/ms/s, counts as integers or in e-notation.
/// </summary>
public static class Units
{
    public const double GB = 1e9;

    public static string Bytes(double bytes)
    {
        var abs = Math.Abs(bytes);
        return abs >= 1e9 ? F(bytes / 1e9, "0.0") + " GB"
            : abs >= 1e6 ? F(bytes / 1e6, "0.0") + " MB"
            : abs >= 1e3 ? F(bytes / 1e3, "0.0") + " kB"
            : F(bytes, "0") + " B";
    }

    public static string Time(double seconds)
    {
        var abs = Math.Abs(seconds);
        return seconds == 0 ? "0"
            : abs >= 1 ? F(seconds, "0.00") + " s"
            : abs >= 1e-3 ? F(seconds * 1e3, "0.0") + " ms"
            : F(seconds * 1e6, "0.0") + " us";
    }

    /// <summary>Integers below a million as they are, anything else as 7.5e9.</summary>
    public static string Count(double value) =>
        Math.Abs(value) < 1e6 && value == Math.Floor(value) ? F(value, "0") : F(value, "0.##e0");

    /// <summary>Bytes per second as GB/s.</summary>
    public static string Bandwidth(double bytesPerSecond) => F(bytesPerSecond / 1e9, "0.#") + " GB/s";

    /// <summary>FLOP/s as TFLOP/s.</summary>
    public static string FlopRate(double flopsPerSecond) => F(flopsPerSecond / 1e12, "0.#") + " TFLOP/s";

    public static string Percent(double fraction) => F(fraction * 100, "0.0") + "%";

    /// <summary>A plain number with up to <paramref name="decimals"/> decimals.</summary>
    public static string Number(double value, int decimals = 3) =>
        F(value, "0." + new string('#', decimals));

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}
