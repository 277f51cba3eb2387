using System.Buffers.Binary;
using System.Globalization;
using ModelParallel.Runtime.Launch;

namespace ModelParallel.Cli;

/// <summary>
/// Child programs for the test suite, run under <c>mp launch</c>:
/// <c>selftest rendezvous</c> gathers every rank's number over the rendezvous and prints them;
/// <c>selftest fail RANK CODE</c> prints its process id, waits for all ranks, then rank RANK exits with CODE
/// while the others sleep (until stopped, at most two minutes);
/// <c>selftest sleep SECONDS</c> prints its process id and sleeps.
/// </summary>
public sealed class SelfTestVerb : IVerb
{
    private static readonly TimeSpan RendezvousTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan LongestSleep = TimeSpan.FromMinutes(2);

    public string Name => "selftest";

    public string Summary => "child programs for the test suite: selftest rendezvous | fail RANK CODE | sleep SECONDS";

    public int Run(string[] args) => args switch
    {
        ["--help" or "-h"] => PrintHelp(),
        ["rendezvous"] => GatherRanks(),
        ["fail", var rank, var code] => Fail(Integer(rank, "RANK"), Integer(code, "CODE")),
        ["sleep", var seconds] => Sleep(TimeSpan.FromSeconds(Integer(seconds, "SECONDS"))),
        _ => throw new ArgumentException($"unknown selftest '{string.Join(' ', args)}' (expected: {Summary})"),
    };

    private int PrintHelp()
    {
        Console.WriteLine($"usage: mp {Name} rendezvous | fail RANK CODE | sleep SECONDS");
        return 0;
    }

    private static int GatherRanks()
    {
        var env = LaunchEnvironment.FromEnvironment();
        var payload = new byte[sizeof(int)];
        BinaryPrimitives.WriteInt32LittleEndian(payload, env.Rank);
        var gathered = Rendezvous.AllGather(env, "selftest rendezvous", payload, RendezvousTimeout);
        var ranks = gathered.Select(p => BinaryPrimitives.ReadInt32LittleEndian(p));
        Console.WriteLine($"rank {env.Rank} of {env.WorldSize} (local {env.LocalRank} of {env.LocalWorldSize}) gathered {string.Join(",", ranks)}");
        Console.Error.WriteLine($"rank {env.Rank} finished");
        return 0;
    }

    private static int Fail(int failingRank, int code)
    {
        var env = LaunchEnvironment.FromEnvironment();
        Console.WriteLine($"pid {Environment.ProcessId}");
        Rendezvous.AllGather(env, "selftest fail", [], RendezvousTimeout);
        if (env.Rank == failingRank)
        {
            return code;
        }
        Thread.Sleep(LongestSleep);
        return 0;
    }

    private static int Sleep(TimeSpan duration)
    {
        Console.WriteLine($"pid {Environment.ProcessId}");
        Thread.Sleep(duration < LongestSleep ? duration : LongestSleep);
        return 0;
    }

    private static int Integer(string value, string name) =>
        int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int parsed)
            ? parsed
            : throw new ArgumentException($"{name} '{value}' is not an integer");
}
