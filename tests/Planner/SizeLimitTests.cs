using System.Diagnostics;
using ModelParallel.Planner;

namespace ModelParallel.Tests.Planner;

public sealed class SizeLimitTests
{
    [Fact]
    public void DivisorsOfALargePrimeAreOneAndItself()
    {
        var watch = Stopwatch.StartNew();
        Assert.Equal([1, int.MaxValue], Search.Divisors(int.MaxValue));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"took {watch.Elapsed}");
    }

    [Fact]
    public void DivisorsOfAHighlyCompositeNumberAreAllFoundInOrder()
    {
        const int n = 735134400; // 2^6 3^3 5^2 7 11 13 17: 7 x 4 x 3 x 2 x 2 x 2 x 2 = 1344 divisors
        var divisors = Search.Divisors(n);
        Assert.Equal(1344, divisors.Count);
        Assert.Equal(divisors.Order(), divisors);
        Assert.All(divisors, d => Assert.Equal(0, n % d));
        int small = Inputs.Pick(12, 360, 5040);
        Assert.Equal(Enumerable.Range(1, small).Where(k => small % k == 0), Search.Divisors(small));
    }

    [Fact]
    public void APrimeGlobalBatchIsPlannedQuickly()
    {
        var watch = Stopwatch.StartNew();
        var (rc, text) = MpCli.Run("plan", "--model", "llama2-7b", "--cluster", "h100x8", "--global-batch", $"{int.MaxValue}");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"took {watch.Elapsed}");
        Assert.True(rc is 0 or 1, text);
    }

    [Fact]
    public void AClusterBeyondTheLimitIsRefusedNamingNodes()
    {
        var e = Assert.Throws<ArgumentException>(() => MpCli.Run("plan", "--model", "llama2-7b", "--cluster", "h100x8", "--nodes", "1000000000", "--global-batch", "1024"));
        Assert.StartsWith("--nodes 1000000000 x ", e.Message, StringComparison.Ordinal);
        Assert.Contains("8000000000 GPUs", e.Message, StringComparison.Ordinal);
        var direct = new PlannerInputs(ModelPresets.Get("llama2-7b"), Inputs.H100(1 << 30), new TrainingSpec { GlobalBatch = 1024 });
        Assert.Contains("8589934592 GPUs", Assert.Throws<ArgumentException>(() => Search.Run(direct, new SearchConstraints(null, null, null, null, null, null))).Message,
            StringComparison.Ordinal);
    }

    [Fact]
    public void FixedDegreesWhoseProductOverflowsAreRefusedNotWrapped()
    {
        var e = Assert.Throws<ArgumentException>(() =>
            MpCli.Run("plan", "--model", "llama2-7b", "--cluster", "h100x8", "--global-batch", "1024", "--tp", "8", "--pp", "32", "--dp", "2147483647"));
        Assert.Contains("549755813632", e.Message, StringComparison.Ordinal);
        var micro = Assert.Throws<ArgumentException>(() =>
            MpCli.Run("plan", "--model", "llama2-7b", "--cluster", "h100x8", "--nodes", "2", "--global-batch", "1024", "--micro-batch", "2147483647"));
        Assert.Contains("micro batch 2147483647 = ", micro.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("= -", micro.Message, StringComparison.Ordinal);
    }
}
