using System.Runtime.CompilerServices;

namespace ModelParallel.Tests.Support;

/// <summary>
/// Fresh random generators for tests. Each seed is written to the test output (shown when a test
/// fails) and remembered for the running test so that assertion messages can name it.
/// </summary>
public static class TestRandom
{
    private static readonly ConditionalWeakTable<object, List<int>> SeedsByTest = new();
    private static readonly object NoTest = new();

    /// <summary>A generator with a fresh seed, reported in the test output and in <see cref="Describe"/>.</summary>
    public static Random Create()
    {
        int seed = Random.Shared.Next();
        var seeds = SeedsByTest.GetValue(CurrentTest(), _ => []);
        lock (seeds)
        {
            seeds.Add(seed);
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"random seed {seed}");
        return new Random(seed);
    }

    /// <summary>"seed a, b" for the generators created by the running test, for assertion messages.</summary>
    public static string Describe()
    {
        if (!SeedsByTest.TryGetValue(CurrentTest(), out var seeds))
        {
            return "no random seed";
        }
        lock (seeds)
        {
            return "seed " + string.Join(", ", seeds);
        }
    }

    private static object CurrentTest() => (object?)TestContext.Current.Test ?? NoTest;
}
