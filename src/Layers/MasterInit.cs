using System.Text;

namespace ModelParallel.Layers;

/// <summary>How a parameter's master weight starts.</summary>
public enum ParameterInit
{
    /// <summary>Normal with mean 0 and standard deviation <see cref="MasterInit.Std"/>.</summary>
    Normal,
    Zeros,
    Ones,
}

/// <summary>
/// Full (unsharded) master weights generated on the host from (seed, parameter name) alone, so that
/// every rank of every TP degree sees the same full weight and takes its own slice of it.
/// </summary>
public static class MasterInit
{
    /// <summary>Standard deviation of <see cref="ParameterInit.Normal"/> weights.</summary>
    public const double Std = 0.02;

    /// <summary>The full weight of <paramref name="count"/> elements, row-major.</summary>
    public static double[] Generate(int seed, string name, ParameterInit init, long count)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var values = new double[count];
        switch (init)
        {
            case ParameterInit.Zeros:
                break;
            case ParameterInit.Ones:
                Array.Fill(values, 1.0);
                break;
            case ParameterInit.Normal:
                FillNormal(values, Mix(seed, name));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(init), init, "unknown parameter init");
        }
        return values;
    }

    /// <summary>FNV-1a over the UTF-8 name, mixed with the seed.</summary>
    private static ulong Mix(int seed, string name)
    {
        ulong hash = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(name))
        {
            hash = (hash ^ b) * 1099511628211UL;
        }
        return hash ^ ((ulong)(uint)seed * 0x9E3779B97F4A7C15UL);
    }

    /// <summary>Box-Muller over a SplitMix64 stream.</summary>
    private static void FillNormal(double[] values, ulong state)
    {
        for (long i = 0; i < values.LongLength; i += 2)
        {
            double u1 = (NextUInt64(ref state) >> 11) * (1.0 / (1UL << 53));
            double u2 = (NextUInt64(ref state) >> 11) * (1.0 / (1UL << 53));
            double radius = Std * Math.Sqrt(-2.0 * Math.Log(1.0 - u1));
            values[i] = radius * Math.Cos(2 * Math.PI * u2);
            if (i + 1 < values.LongLength)
            {
                values[i + 1] = radius * Math.Sin(2 * Math.PI * u2);
            }
        }
    }

    private static ulong NextUInt64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
