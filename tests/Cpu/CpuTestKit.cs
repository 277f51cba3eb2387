using ModelParallel.Runtime;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>Random test data for the CPU backend's compute dtypes, and tolerances for them.</summary>
internal static class CpuTestKit
{
    /// <summary>The compute dtypes of the CPU backend, for theories.</summary>
    public static TheoryData<DType> ComputeTypes => [DType.Float32, DType.Float64];

    /// <summary>Relative error allowed against a float64 reference computed from the same (rounded) inputs.</summary>
    public static double Tolerance(DType dtype) => dtype == DType.Float32 ? 1e-5 : 1e-12;

    /// <summary>Relative error allowed against a float64 finite-difference gradient (itself accurate to about 1e-9).</summary>
    public static double GradientTolerance(DType dtype) => dtype == DType.Float32 ? 1e-5 : 1e-7;

    /// <summary>The values as the dtype stores them (float32 rounding), so that references see the same inputs.</summary>
    public static double[] Rounded(DType dtype, double[] values) =>
        dtype == DType.Float32 ? [.. values.Select(v => (double)(float)v)] : [.. values];

    /// <summary>Fresh random values in [-scale, scale], rounded to <paramref name="dtype"/>.</summary>
    public static double[] Random(Random rng, DType dtype, int count, double scale = 1) =>
        Rounded(dtype, Numerics.RandomArray(rng, count, scale));
}
