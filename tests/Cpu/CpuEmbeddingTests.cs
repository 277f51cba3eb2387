using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>Vocab-sharded embedding lookup and its accumulating backward.</summary>
public sealed class CpuEmbeddingTests
{
    [Theory]
    [MemberData(nameof(CpuTestKit.ComputeTypes), MemberType = typeof(CpuTestKit))]
    public void Embedding_ShardLookupAndBackward_MatchReference(DType dtype)
    {
        var rng = TestRandom.Create();
        const int tokens = 13, hidden = 5, vocab = 10, vocabStart = 3, vocabRows = 5;
        var ids = Enumerable.Range(0, tokens).Select(_ => rng.Next(vocab)).ToArray();
        var table = CpuTestKit.Random(rng, dtype, vocabRows * hidden);
        var dOut = CpuTestKit.Random(rng, dtype, tokens * hidden);
        var dTable0 = CpuTestKit.Random(rng, dtype, vocabRows * hidden);
        var expectedOut = new double[tokens * hidden];
        var expectedDTable = (double[])dTable0.Clone();
        for (int t = 0; t < tokens; t++)
        {
            int row = ids[t] - vocabStart;
            if (row is >= 0 and < vocabRows)
            {
                for (int h = 0; h < hidden; h++)
                {
                    expectedOut[t * hidden + h] = table[row * hidden + h];
                    expectedDTable[row * hidden + h] += dOut[t * hidden + h];
                }
            }
        }

        using var backend = new CpuBackend(dtype);
        var idt = TestTensors.UploadInts(backend, ids);
        var outt = TestTensors.Poisoned(backend, tokens * hidden);
        backend.Kernels.EmbeddingForward(outt, idt, TestTensors.Upload(backend, table), tokens, hidden, vocabStart, vocabRows);
        var dtt = TestTensors.Upload(backend, dTable0);
        backend.Kernels.EmbeddingBackward(dtt, TestTensors.Upload(backend, dOut), idt, tokens, hidden, vocabStart, vocabRows);
        double tol = CpuTestKit.Tolerance(dtype);
        Assert.Equal(expectedOut, TestTensors.Download(outt));
        Numerics.AssertClose(TestTensors.Download(dtt), expectedDTable, tol, "accumulated dTable");
    }

    [Fact]
    public void Embedding_BadArguments_ThrowNamingThem()
    {
        using var backend = new CpuBackend(DType.Float32);
        var output = backend.Allocate(DType.Float32, 12);
        var table = backend.Allocate(DType.Float32, 8);
        var ids = backend.Allocate(DType.Int32, 3);
        var floatIds = backend.Allocate(DType.Float32, 3);
        var wrongIds = Assert.Throws<ArgumentException>(() => backend.Kernels.EmbeddingForward(output, floatIds, table, 3, 4, 0, 2));
        Assert.Equal("ids", wrongIds.ParamName);
        Assert.Contains("Int32", wrongIds.Message);
        Assert.Equal("vocabStart", Assert.Throws<ArgumentOutOfRangeException>(
            () => backend.Kernels.EmbeddingForward(output, ids, table, 3, 4, -2, 2)).ParamName);
        Assert.Equal("dTable", Assert.Throws<ArgumentException>(
            () => backend.Kernels.EmbeddingBackward(table, output, ids, 3, 4, 0, 3)).ParamName);
    }
}
