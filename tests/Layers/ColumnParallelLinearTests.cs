using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Layers;

public class ColumnParallelLinearTests
{
    private const int In = 64;
    private const int Out = 96;
    private static readonly TokenShape Shape = new(4, 3);

    public static TheoryData<int, bool, bool, bool, LinearActivation> Cases
    {
        get
        {
            var data = new TheoryData<int, bool, bool, bool, LinearActivation>();
            foreach (int tp in new[] { 1, 2, 4 })
            {
                // (bias, gatherOutput, sequenceParallel, activation)
                data.Add(tp, true, false, false, LinearActivation.None);
                data.Add(tp, false, true, false, LinearActivation.None);
                data.Add(tp, true, false, true, LinearActivation.None);
                data.Add(tp, true, false, false, LinearActivation.Gelu);
                data.Add(tp, false, false, true, LinearActivation.Gelu);
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesSingleRankReference(int tp, bool bias, bool gatherOutput, bool sp, LinearActivation activation) =>
        AssertMatchesReference(TestWorld.Cpu(DType.Float32), tp, bias, gatherOutput, sp, activation, 1e-5);

    /// <summary>The run at <paramref name="tp"/> on <paramref name="world"/> against TP = 1 in float64 on the CPU: the output
    /// joined from column blocks (unless gathered), the input gradient joined from token shards with sequence parallelism.</summary>
    internal static void AssertMatchesReference(TestWorld world, int tp, bool bias, bool gatherOutput, bool sp,
        LinearActivation activation, double tol)
    {
        Func<ParallelContext, LayerStep> build = c => LayerStep.Of(
            new ColumnParallelLinear(c, "linear", In, Out, bias, gatherOutput, skipBiasAdd: false, sp, activation));
        var rng = TestRandom.Create();
        var weights = world.Representable(RandomWeights.For(rng, c => build(c).Layer));
        var input = world.Representable(Numerics.RandomArray(rng, Shape.Tokens * In));
        var outputGrad = world.Representable(Numerics.RandomArray(rng, Shape.Tokens * Out));
        var reference = LayerHarness.Run(TestWorld.Cpu(DType.Float64), 1, false, build, weights, Shape, _ => input, _ => outputGrad)[0];
        var runs = LayerHarness.Run(world, tp, sp, build, weights, Shape,
            r => sp ? HostArrays.Rows(input, In, r, tp) : input,
            r => gatherOutput ? outputGrad : HostArrays.Columns(outputGrad, Out, r, tp));
        string what = $"TP={tp} bias={bias} gather={gatherOutput} SP={sp} {activation}";
        var output = gatherOutput ? runs[0].Output : HostArrays.ConcatColumns(runs.Select(r => r.Output).ToArray(), Shape.Tokens);
        Numerics.AssertClose(output, reference.Output, tol, $"{what} output");
        var inputGrad = sp ? HostArrays.ConcatRows(runs.Select(r => r.InputGrad)) : runs[0].InputGrad;
        Numerics.AssertClose(inputGrad, reference.InputGrad, tol, $"{what} input gradient");
        LayerHarness.AssertGrads(runs.Select(r => r.Grads).ToArray(), reference.Grads, tol, what);
    }

    [Fact]
    public void ForwardComputesXATransposePlusBias()
    {
        var rng = TestRandom.Create();
        var weights = RandomWeights.For(rng, c => new ColumnParallelLinear(c, "linear", In, Out));
        var input = Numerics.RandomArray(rng, Shape.Tokens * In);
        var expected = HostLinear(input, weights["linear.weight"], weights["linear.bias"], Shape.Tokens, In, Out);
        var output = TestWorld.Cpu(DType.Float64).Collect(1, ctx =>
        {
            using var layer = new ColumnParallelLinear(new ParallelContext(ctx.Backend, ctx.World), "linear", In, Out);
            layer.Load(weights);
            using var x = TestTensors.Upload(ctx.Backend, input);
            return TestTensors.Download(layer.Forward(x, Shape));
        })[0];
        Numerics.AssertClose(output, expected, 1e-12, "Y = X A^T + b");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void SkipBiasAddLeavesTheBiasOutButStillComputesItsGradient(int tp)
    {
        var rng = TestRandom.Create();
        var weights = RandomWeights.For(rng, c => new ColumnParallelLinear(c, "linear", In, Out));
        var input = Numerics.RandomArray(rng, Shape.Tokens * In);
        var outputGrad = Numerics.RandomArray(rng, Shape.Tokens * Out);
        var runs = LayerHarness.Run(TestWorld.Cpu(DType.Float64), tp, false,
            c => LayerStep.Of(new ColumnParallelLinear(c, "linear", In, Out, bias: true, gatherOutput: true, skipBiasAdd: true)),
            weights, Shape, _ => input, _ => outputGrad);
        var expected = HostLinear(input, weights["linear.weight"], new double[Out], Shape.Tokens, In, Out);
        var biasGrad = Enumerable.Range(0, Out).Select(j => Enumerable.Range(0, Shape.Tokens).Sum(t => outputGrad[t * Out + j])).ToArray();
        foreach (var run in runs)
        {
            Numerics.AssertClose(run.Output, expected, 1e-12, "output without bias");
            Numerics.AssertClose(run.Grads["linear.bias"], biasGrad, 1e-12, "bias gradient");
        }
    }

    /// <summary>Y[t, o] = sum_i X[t, i] A[o, i] + b[o] on the host.</summary>
    internal static double[] HostLinear(double[] x, double[] a, double[] b, int tokens, int inSize, int outSize)
    {
        var y = new double[tokens * outSize];
        for (int t = 0; t < tokens; t++)
        {
            for (int o = 0; o < outSize; o++)
            {
                double sum = b[o];
                for (int i = 0; i < inSize; i++)
                {
                    sum += x[t * inSize + i] * a[o * inSize + i];
                }
                y[t * outSize + o] = sum;
            }
        }
        return y;
    }
}
