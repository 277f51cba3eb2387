using ModelParallel.Layers;
using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Layers;

/// <summary>Sizes a TP degree does not divide, invalid combinations and inputs of the wrong shape throw at once, naming the values.</summary>
public class SizeValidationTests
{
    [Fact]
    public void HiddenSizeNotDivisibleByTpThrows()
    {
        AssertThrows<ArgumentException>(4, false, c => new RowParallelLinear(c, "proj", 66, 64), "66", "tensor-parallel size 4");
        AssertThrows<ArgumentException>(4, false, c => new ColumnParallelLinear(c, "qkv", 64, 66), "66", "tensor-parallel size 4");
    }

    [Fact]
    public void FfnSizeNotDivisibleByTpThrows() =>
        AssertThrows<ArgumentException>(4, false, c => new ParallelMlp(c, "mlp", 64, 130, MlpActivation.SwiGlu, false), "ffn hidden size 130", "tensor-parallel size 4");

    [Fact]
    public void HeadsNotDivisibleByTpThrows() =>
        AssertThrows<ArgumentException>(4, false, c => new ParallelAttention(c, "attention", 96, 6, 6, false), "attention heads 6", "tensor-parallel size 4");

    [Fact]
    public void KvHeadsThatNeitherDivideNorAreDivisibleByTpThrow() =>
        AssertThrows<ArgumentException>(2, false, c => new ParallelAttention(c, "attention", 96, 12, 3, false), "key/value heads 3", "tensor-parallel size 2");

    [Fact]
    public void KvHeadsNotDividingHeadsThrow() =>
        AssertThrows<ArgumentException>(1, false, c => new ParallelAttention(c, "attention", 64, 8, 3, false), "attention heads 8", "key/value heads 3");

    [Fact]
    public void HiddenNotDivisibleByHeadsThrows() =>
        AssertThrows<ArgumentException>(1, false, c => new ParallelAttention(c, "attention", 64, 6, 6, false), "hidden size 64", "attention heads 6");

    [Fact]
    public void VocabularyNotDivisibleByTpThrows()
    {
        AssertThrows<ArgumentException>(4, false, c => new VocabParallelEmbedding(c, "embedding", 98, 64, false), "vocabulary size 98", "tensor-parallel size 4");
        AssertThrows<ArgumentException>(4, false, c => new VocabParallelCrossEntropy(c, "loss", 98, 98), "vocabulary size 98", "tensor-parallel size 4");
        Assert.Equal(100, VocabParallelEmbedding.PaddedVocabSize(98, 4));
    }

    [Fact]
    public void TokensNotDivisibleByTpUnderSequenceParallelismThrow() =>
        AssertThrows<ArgumentException>(4, true, c =>
        {
            using var layer = new TransformerLayer(c, "layer", TransformerLayerTests.Gpt2);
            using var x = c.Backend.Allocate(c.Backend.Compute, 5 * 2 * 64 / 4);
            return layer.Forward(x, new TokenShape(5, 2));
        }, "sequence 5 x batch 2", "10", "tensor-parallel size (sequence parallelism) 4");

    [Fact]
    public void InvalidCombinationsThrow()
    {
        AssertThrows<ArgumentException>(1, false, c => new ColumnParallelLinear(c, "l", 8, 8, gatherOutput: true, sequenceParallel: true), "gatherOutput", "sequenceParallel");
        AssertThrows<ArgumentException>(1, false, c => new RowParallelLinear(c, "l", 8, 8, inputIsParallel: false, sequenceParallel: true), "inputIsParallel");
        AssertThrows<ArgumentException>(1, false, c => new ColumnParallelLinear(c, "l", 8, 8, skipBiasAdd: true, activation: LinearActivation.Gelu), "skipBiasAdd", "Gelu");
    }

    [Fact]
    public void InputOfTheWrongShapeThrows()
    {
        var shape = new TokenShape(4, 2);
        AssertThrows<ArgumentException>(2, false, c =>
        {
            using var layer = new ColumnParallelLinear(c, "linear", 16, 32);
            using var x = Random(c, 8 * 15);
            return layer.Forward(x, shape);
        }, "linear", "input has 120 elements", "8 x 16 = 128");
        AssertThrows<ArgumentException>(2, false, c =>
        {
            using var layer = new ColumnParallelLinear(c, "linear", 16, 32);
            using var x = Random(c, 8 * 16);
            layer.Forward(x, shape);
            using var dy = Random(c, 8 * 32);
            return layer.Backward(dy);
        }, "output gradient has 256 elements", "8 x 16 = 128");
        AssertThrows<ArgumentException>(2, false, c =>
        {
            using var layer = new ParallelMlp(c, "mlp", 16, 32, MlpActivation.Gelu, true);
            using var x = Random(c, 4 * 16);
            return layer.Forward(x, shape);
        }, "input has 64 elements", "8 x 16 = 128");
        AssertThrows<ArgumentException>(2, false, c =>
        {
            using var layer = new VocabParallelEmbedding(c, "embedding", 32, 16, false);
            using var ids = Random(c, 8);
            return layer.Forward(ids, shape);
        }, "ids has 8 elements of Float32", "of Int32");
    }

    [Fact]
    public void BackwardBeforeForwardThrows() =>
        AssertThrows<InvalidOperationException>(1, false, c =>
        {
            using var layer = new RowParallelLinear(c, "linear", 16, 16);
            using var dy = Random(c, 8 * 16);
            return layer.Backward(dy);
        }, "linear", "backward called before forward");

    [Fact]
    public void LoadOfTheWrongSizeThrows() =>
        AssertThrows<ArgumentException>(2, false, c =>
        {
            using var layer = new RowParallelLinear(c, "linear", 16, 8);
            layer.Weight.Load(new double[100]);
            return layer;
        }, "linear.weight", "100 elements", "8 x 16 = 128");

    private static Tensor Random(ParallelContext c, int count) =>
        TestTensors.Upload(c.Backend, Numerics.RandomArray(new Random(c.TensorParallelRank + 1), count));

    /// <summary>Every rank of a world of <paramref name="tp"/> runs <paramref name="act"/>, which must throw
    /// <typeparamref name="TException"/> whose message contains each of <paramref name="fragments"/>.</summary>
    private static void AssertThrows<TException>(int tp, bool sequenceParallel, Func<ParallelContext, object> act, params string[] fragments)
        where TException : Exception
    {
        var failure = Assert.Throws<RankFailedException>(() => CpuWorld.Run(tp, DType.Float32,
            ctx => act(new ParallelContext(ctx.Backend, ctx.World, sequenceParallel))));
        var error = Assert.IsType<TException>(failure.InnerException, exactMatch: false);
        foreach (var fragment in fragments)
        {
            Assert.Contains(fragment, error.Message, StringComparison.Ordinal);
        }
    }
}
