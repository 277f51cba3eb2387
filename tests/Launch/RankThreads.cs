namespace ModelParallel.Tests.Launch;

/// <summary>Runs one body per rank, each on its own thread, and returns what each returned or threw.</summary>
internal static class RankThreads
{
    private static readonly TimeSpan JoinLimit = TimeSpan.FromSeconds(60);

    public static (T? Result, Exception? Error)[] Run<T>(int count, Func<int, T> body)
    {
        var outcomes = new (T? Result, Exception? Error)[count];
        var threads = Enumerable.Range(0, count).Select(i => new Thread(() =>
        {
            try
            {
                outcomes[i] = (body(i), null);
            }
            catch (Exception e)
            {
                outcomes[i] = (default, e);
            }
        }) { IsBackground = true }).ToList();
        threads.ForEach(t => t.Start());
        foreach (var thread in threads)
        {
            Assert.True(thread.Join(JoinLimit), $"a rank thread did not finish within {JoinLimit}");
        }
        return outcomes;
    }

    /// <summary>Like <see cref="Run{T}"/>, but fails the test when a rank threw.</summary>
    public static T[] RunAll<T>(int count, Func<int, T> body) =>
        Run(count, body).Select((o, rank) => o.Error is null ? o.Result! : throw new Xunit.Sdk.XunitException($"rank {rank} threw: {o.Error}")).ToArray();
}
