using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>The vocab-parallel cross-entropy pieces, combined over two vocab shards as a layer would, against
/// log-softmax over the whole vocabulary.</summary>
public sealed class CpuCrossEntropyTests
{
    [Theory]
    [MemberData(nameof(CpuTestKit.ComputeTypes), MemberType = typeof(CpuTestKit))]
    public void CrossEntropy_TwoShards_MatchesFullSoftmax(DType dtype)
    {
        var rng = TestRandom.Create();
        const int rows = 4, vocab = 11;
        int[] shardStart = [0, 6], shardCols = [6, 5];
        var logits = CpuTestKit.Random(rng, dtype, rows * vocab, 5);
        var targets = Enumerable.Range(0, rows).Select(_ => rng.Next(vocab)).ToArray();
        double scale = 1.0 / rows;
        var expectedLoss = new double[rows];
        var expectedGrad = new double[rows * vocab];
        for (int r = 0; r < rows; r++)
        {
            var row = logits.AsSpan(r * vocab, vocab).ToArray();
            double max = row.Max(), sum = row.Sum(v => Math.Exp(v - max));
            expectedLoss[r] = Math.Log(sum) + max - row[targets[r]];
            for (int j = 0; j < vocab; j++)
            {
                expectedGrad[r * vocab + j] = scale * (Math.Exp(row[j] - max) / sum - (j == targets[r] ? 1 : 0));
            }
        }

        using var backend = new CpuBackend(dtype);
        var k = backend.Kernels;
        double tol = CpuTestKit.Tolerance(dtype);
        var targetT = TestTensors.UploadInts(backend, targets);
        var shards = new Tensor[2];
        var maxima = new double[2][];
        for (int s = 0; s < 2; s++)
        {
            var shard = Enumerable.Range(0, rows)
                .SelectMany(r => logits.AsSpan(r * vocab + shardStart[s], shardCols[s]).ToArray()).ToArray();
            shards[s] = TestTensors.Upload(backend, shard);
            var maxT = TestTensors.Poisoned(backend, rows);
            k.CrossEntropyRowMax(maxT, shards[s], rows, shardCols[s]);
            maxima[s] = TestTensors.Download(maxT);
            Assert.Equal(Enumerable.Range(0, rows).Select(r => shard.AsSpan(r * shardCols[s], shardCols[s]).ToArray().Max()), maxima[s]);
        }
        // The all-reduces a vocab-parallel layer performs: max of the maxima, then sums of the shards' pieces.
        var globalMax = TestTensors.Upload(backend, [.. maxima[0].Zip(maxima[1], Math.Max)]);
        var sumExp = new double[rows];
        var targetLogit = new double[rows];
        for (int s = 0; s < 2; s++)
        {
            var sumT = TestTensors.Poisoned(backend, rows);
            var targetT2 = TestTensors.Poisoned(backend, rows);
            k.CrossEntropySumExp(sumT, targetT2, shards[s], globalMax, targetT, rows, shardCols[s], shardStart[s]);
            sumExp = CpuReference.Add(sumExp, TestTensors.Download(sumT));
            targetLogit = CpuReference.Add(targetLogit, TestTensors.Download(targetT2));
        }
        var sumExpT = TestTensors.Upload(backend, sumExp);
        var lossT = TestTensors.Poisoned(backend, rows);
        k.CrossEntropyLoss(lossT, globalMax, sumExpT, TestTensors.Upload(backend, targetLogit), rows);
        Numerics.AssertClose(TestTensors.Download(lossT), expectedLoss, tol, "loss");

        for (int s = 0; s < 2; s++)
        {
            var gradT = TestTensors.Poisoned(backend, rows * shardCols[s]);
            k.CrossEntropyBackward(gradT, shards[s], globalMax, sumExpT, targetT, rows, shardCols[s], shardStart[s], (float)scale);
            var expectedShard = Enumerable.Range(0, rows)
                .SelectMany(r => expectedGrad.AsSpan(r * vocab + shardStart[s], shardCols[s]).ToArray()).ToArray();
            Numerics.AssertClose(TestTensors.Download(gradT), expectedShard, tol, $"dLogits of shard {s}");
        }
    }

    [Fact]
    public void CrossEntropy_BadArguments_ThrowNamingThem()
    {
        using var backend = new CpuBackend(DType.Float64);
        var k = backend.Kernels;
        var logits = backend.Allocate(DType.Float64, 12);
        var three = backend.Allocate(DType.Float64, 3);
        var four = backend.Allocate(DType.Float64, 4);
        var targets = backend.Allocate(DType.Int32, 3);
        Assert.Equal("rowMax", Assert.Throws<ArgumentException>(() => k.CrossEntropyRowMax(four, logits, 3, 4)).ParamName);
        Assert.Equal("targets", Assert.Throws<ArgumentException>(
            () => k.CrossEntropySumExp(three, three, logits, three, three, 3, 4, 0)).ParamName);
        Assert.Equal("vocabStart", Assert.Throws<ArgumentOutOfRangeException>(
            () => k.CrossEntropyBackward(logits, logits, three, three, targets, 3, 4, -1, 1f)).ParamName);
        Assert.Equal("loss", Assert.Throws<ArgumentException>(() => k.CrossEntropyLoss(four, three, three, three, 3)).ParamName);
    }
}
