using System.Numerics;

namespace ModelParallel.Runtime.Cpu;

/// <summary>
/// The reference kernels: every <see cref="IKernels"/> operation computed on the host in the backend's compute
/// dtype (float or double), with the float-point tensors in that dtype and ids/targets in Int32.
/// </summary>
public sealed partial class CpuKernels : IKernels
{
    /// <summary>Below this many multiply-adds an operation runs on the calling thread.</summary>
    private const long ParallelThreshold = 1 << 16;

    private readonly CpuBackend _backend;

    internal CpuKernels(CpuBackend backend)
    {
        _backend = backend;
    }

    private bool IsDouble => _backend.Compute == DType.Float64;

    /// <summary>The tensor as this backend's <see cref="CpuTensor"/>, checked to hold <paramref name="dtype"/>
    /// (the compute dtype when null).</summary>
    private CpuTensor CheckDType(Tensor? tensor, string name, DType? dtype = null)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        var t = _backend.Own(tensor, name);
        var expected = dtype ?? _backend.Compute;
        if (t.DType != expected)
        {
            throw new ArgumentException($"{name} is {t.DType} but must be {expected}", name);
        }
        return t;
    }

    /// <summary>As <see cref="CheckDType"/>, and checked to hold <paramref name="count"/> elements.</summary>
    private CpuTensor Check(Tensor? tensor, string name, long count, string countFormula, DType? dtype = null)
    {
        var t = CheckDType(tensor, name, dtype);
        if (t.Count != count)
        {
            throw new ArgumentException($"{name} has {t.Count} elements but {countFormula} = {count}", name);
        }
        return t;
    }

    private static void Positive(int value, string name)
    {
        if (value <= 0)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be positive");
        }
    }

    private static void NonNegative(int value, string name)
    {
        if (value < 0)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must not be negative");
        }
    }

    /// <summary>Runs body(start, end) over [0, count), in parallel chunks when the work is large enough.</summary>
    private static void For(int count, long workPerItem, Action<int, int> body)
    {
        long work = count * Math.Max(1, workPerItem);
        int chunks = (int)Math.Min(Math.Min(count, Environment.ProcessorCount * 4L), work / ParallelThreshold);
        if (chunks <= 1)
        {
            body(0, count);
            return;
        }
        Parallel.For(0, chunks, chunk =>
        {
            int start = (int)((long)count * chunk / chunks), end = (int)((long)count * (chunk + 1) / chunks);
            body(start, end);
        });
    }

    /// <summary>Constants of the tanh GeLU in T.</summary>
    private static class GeluConstants<T>
        where T : IFloatingPointIeee754<T>
    {
        public static readonly T Half = T.CreateChecked(0.5);
        public static readonly T SqrtTwoOverPi = T.CreateChecked(0.7978845608028654);
        public static readonly T Cubic = T.CreateChecked(0.044715);
        public static readonly T CubicTimesThree = T.CreateChecked(3 * 0.044715);
    }

    private static T Gelu<T>(T x)
        where T : IFloatingPointIeee754<T>
    {
        T inner = GeluConstants<T>.SqrtTwoOverPi * (x + GeluConstants<T>.Cubic * x * x * x);
        return GeluConstants<T>.Half * x * (T.One + T.Tanh(inner));
    }

    /// <summary>d gelu(x) / dx for the tanh form.</summary>
    private static T GeluGrad<T>(T x)
        where T : IFloatingPointIeee754<T>
    {
        T x2 = x * x;
        T t = T.Tanh(GeluConstants<T>.SqrtTwoOverPi * (x + GeluConstants<T>.Cubic * x2 * x));
        T dInner = GeluConstants<T>.SqrtTwoOverPi * (T.One + GeluConstants<T>.CubicTimesThree * x2);
        return GeluConstants<T>.Half * (T.One + t) + GeluConstants<T>.Half * x * (T.One - t * t) * dInner;
    }
}
