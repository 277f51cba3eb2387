namespace ModelParallel.Tests.Support;

/// <summary>Central-difference gradients of scalar functions, computed in float64.</summary>
public static class FiniteDifference
{
    /// <summary>d f / d x[i] for every i, by (f(x + h e_i) - f(x - h e_i)) / 2h. <paramref name="x"/> is restored.</summary>
    public static double[] Gradient(Func<double[], double> f, double[] x, double h = 1e-5)
    {
        ArgumentNullException.ThrowIfNull(f);
        ArgumentNullException.ThrowIfNull(x);
        var grad = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double saved = x[i];
            x[i] = saved + h;
            double plus = f(x);
            x[i] = saved - h;
            double minus = f(x);
            x[i] = saved;
            grad[i] = (plus - minus) / (2 * h);
        }
        return grad;
    }
}
