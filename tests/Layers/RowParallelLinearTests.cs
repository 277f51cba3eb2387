using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Layers;

public class RowParallelLinearTests
{
    private const int In = 96;
    private const int Out = 64;
    private static readonly TokenShape Shape = new(4, 3);

    public static TheoryData<int, bool, bool, bool> Cases
    {
        get
        {
            var data = new TheoryData<int, bool, bool, bool>();
            foreach (int tp in new[] { 1, 2, 4 })
            {
                // (bias, inputIsParallel, sequenceParallel)
                data.Add(tp, true, false, false);
                data.Add(tp, false, true, false);
                data.Add(tp, true, true, false);
                data.Add(tp, true, true, true);
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesSingleRankReference(int tp, bool bias, bool inputIsParallel, bool sp) =>
        AssertMatchesReference(TestWorld.Cpu(DType.Float32), tp, bias, inputIsParallel, sp, 1e-5);

    /// <summary>The run at <paramref name="tp"/> on <paramref name="world"/> against TP = 1 in float64 on the CPU: the output
    /// joined from token shards with sequence parallelism, the input gradient from column blocks when the input is parallel.</summary>
    internal static void AssertMatchesReference(TestWorld world, int tp, bool bias, bool inputIsParallel, bool sp, double tol)
    {
        Func<ParallelContext, LayerStep> build = c => LayerStep.Of(new RowParallelLinear(c, "linear", In, Out, bias, inputIsParallel, sp));
        var rng = TestRandom.Create();
        var weights = world.Representable(RandomWeights.For(rng, c => build(c).Layer));
        var input = world.Representable(Numerics.RandomArray(rng, Shape.Tokens * In));
        var outputGrad = world.Representable(Numerics.RandomArray(rng, Shape.Tokens * Out));
        var reference = LayerHarness.Run(TestWorld.Cpu(DType.Float64), 1, false, build, weights, Shape, _ => input, _ => outputGrad)[0];
        var runs = LayerHarness.Run(world, tp, sp, build, weights, Shape,
            r => inputIsParallel ? HostArrays.Columns(input, In, r, tp) : input,
            r => sp ? HostArrays.Rows(outputGrad, Out, r, tp) : outputGrad);
        string what = $"TP={tp} bias={bias} inputIsParallel={inputIsParallel} SP={sp}";
        var output = sp ? HostArrays.ConcatRows(runs.Select(r => r.Output)) : runs[0].Output;
        Numerics.AssertClose(output, reference.Output, tol, $"{what} output");
        var inputGrad = inputIsParallel ? HostArrays.ConcatColumns(runs.Select(r => r.InputGrad).ToArray(), Shape.Tokens) : runs[0].InputGrad;
        Numerics.AssertClose(inputGrad, reference.InputGrad, tol, $"{what} input gradient");
        LayerHarness.AssertGrads(runs.Select(r => r.Grads).ToArray(), reference.Grads, tol, what);
    }

    [Fact]
    public void ForwardComputesXATransposePlusBias()
    {
        var rng = TestRandom.Create();
        var weights = RandomWeights.For(rng, c => new RowParallelLinear(c, "linear", In, Out));
        var input = Numerics.RandomArray(rng, Shape.Tokens * In);
        var expected = ColumnParallelLinearTests.HostLinear(input, weights["linear.weight"], weights["linear.bias"], Shape.Tokens, In, Out);
        var outputs = TestWorld.Cpu(DType.Float64).Collect(2, ctx =>
        {
            using var layer = new RowParallelLinear(new ParallelContext(ctx.Backend, ctx.World), "linear", In, Out);
            layer.Load(weights);
            using var x = TestTensors.Upload(ctx.Backend, input);
            return TestTensors.Download(layer.Forward(x, Shape));
        });
        foreach (var output in outputs)
        {
            Numerics.AssertClose(output, expected, 1e-12, "Y = X A^T + b, bias added once after the reduction");
        }
    }
}
