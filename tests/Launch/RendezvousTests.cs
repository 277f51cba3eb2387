using ModelParallel.Runtime.Launch;

namespace ModelParallel.Tests.Launch;

/// <summary>The rendezvous with every rank a thread of this process, over loopback on a fresh free port.</summary>
public sealed class RendezvousTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);

    private static Func<int, LaunchEnvironment> World(int worldSize)
    {
        int port = Launcher.FindFreePort();
        return rank => new LaunchEnvironment(rank, worldSize, rank, worldSize, "127.0.0.1", port);
    }

    private static byte[] RandomPayload(int maxLength)
    {
        var payload = new byte[Random.Shared.Next(1, maxLength + 1)];
        Random.Shared.NextBytes(payload);
        return payload;
    }

    [Fact]
    public void AllGatherGivesEveryRankEveryPayloadInRankOrder()
    {
        const int worldSize = 4;
        var env = World(worldSize);
        var payloads = Enumerable.Range(0, worldSize).Select(_ => RandomPayload(4096)).ToArray();
        var gathered = RankThreads.RunAll(worldSize, rank => Rendezvous.AllGather(env(rank), "gather", payloads[rank], Generous));
        foreach (var received in gathered)
        {
            Assert.Equal(payloads, received);
        }
    }

    [Fact]
    public void AllGatherCarriesEmptyPayloads()
    {
        const int worldSize = 3;
        var env = World(worldSize);
        var payloads = new[] { RandomPayload(64), [], RandomPayload(64) };
        var gathered = RankThreads.RunAll(worldSize, rank => Rendezvous.AllGather(env(rank), "empty", payloads[rank], Generous));
        Assert.All(gathered, received => Assert.Equal(payloads, received));
    }

    [Fact]
    public void BroadcastGivesEveryRankRankZerosPayload()
    {
        const int worldSize = 4;
        var env = World(worldSize);
        var root = RandomPayload(1 << 16);
        var received = RankThreads.RunAll(worldSize, rank =>
            Rendezvous.Broadcast(env(rank), "unique id", rank == 0 ? root : null, Generous));
        Assert.All(received, payload => Assert.Equal(root, payload));
    }

    [Fact]
    public void RoundsInSequenceOnOnePortStayApart()
    {
        const int worldSize = 4, rounds = 12;
        var env = World(worldSize);
        var payloads = Enumerable.Range(0, rounds).Select(_ => Enumerable.Range(0, worldSize).Select(_ => RandomPayload(256)).ToArray()).ToArray();
        var results = RankThreads.RunAll(worldSize, rank => Enumerable.Range(0, rounds).Select(round => round % 2 == 0
            ? Rendezvous.AllGather(env(rank), $"round {round}", payloads[round][rank], Generous)
            : [Rendezvous.Broadcast(env(rank), $"round {round}", payloads[round][rank], Generous)]).ToArray());
        foreach (var perRank in results)
        {
            for (int round = 0; round < rounds; round++)
            {
                Assert.Equal(round % 2 == 0 ? payloads[round] : [payloads[round][0]], perRank[round]);
            }
        }
    }

    [Fact]
    public void WorldOfOneUsesNoSocket()
    {
        // An address that cannot be resolved: any socket use would fail.
        var env = new LaunchEnvironment(0, 1, 0, 1, "no-such-host.invalid", 1);
        var payload = RandomPayload(128);
        Assert.Equal([payload], Rendezvous.AllGather(env, "alone", payload, TimeSpan.FromSeconds(1)));
        Assert.Equal(payload, Rendezvous.Broadcast(env, "alone", payload, TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public void MissingRankTimesOutNamingIt()
    {
        var env = World(3);
        var outcomes = RankThreads.Run(2, rank => Rendezvous.AllGather(env(rank), "incomplete", RandomPayload(16), TimeSpan.FromSeconds(1)));
        var onRankZero = Assert.IsType<TimeoutException>(outcomes[0].Error);
        Assert.Contains("rank 2 never arrived (arrived: 0, 1)", onRankZero.Message);
        Assert.Contains("'incomplete'", onRankZero.Message);
        Assert.IsType<TimeoutException>(outcomes[1].Error);
    }

    [Fact]
    public void PeerWithoutRankZeroSaysRankZeroNeverAnswered()
    {
        var env = World(2)(1);
        var error = Assert.Throws<TimeoutException>(() => Rendezvous.AllGather(env, "alone", RandomPayload(16), TimeSpan.FromMilliseconds(500)));
        Assert.Contains($"rank 0 at 127.0.0.1:{env.MasterPort} never answered within 0.5 s", error.Message);
    }

    [Fact]
    public void KeyMismatchFailsOnBothSidesNamingBothKeys()
    {
        var env = World(2);
        var outcomes = RankThreads.Run(2, rank => Rendezvous.AllGather(env(rank), rank == 0 ? "alpha" : "beta", RandomPayload(16), Generous));
        foreach (var (_, error) in outcomes)
        {
            var mismatch = Assert.IsType<InvalidOperationException>(error);
            Assert.Contains("rank 0 has key 'alpha'", mismatch.Message);
            Assert.Contains("rank 1 sent key 'beta'", mismatch.Message);
        }
    }

    [Fact]
    public void WorldSizeMismatchFailsOnBothSidesNamingBothSizes()
    {
        int port = Launcher.FindFreePort();
        var outcomes = RankThreads.Run(2, rank =>
            Rendezvous.AllGather(new LaunchEnvironment(rank, 2 + rank, rank, 2 + rank, "127.0.0.1", port), "sizes", RandomPayload(16), Generous));
        foreach (var (_, error) in outcomes)
        {
            var mismatch = Assert.IsType<InvalidOperationException>(error);
            Assert.Contains("world size 2", mismatch.Message);
            Assert.Contains("rank 1 sent key 'sizes', world size 3", mismatch.Message);
        }
    }

    [Fact]
    public void OperationMismatchFailsOnBothSides()
    {
        var env = World(2);
        var outcomes = RankThreads.Run(2, rank => rank == 0
            ? Rendezvous.Broadcast(env(rank), "op", RandomPayload(16), Generous)
            : Rendezvous.AllGather(env(rank), "op", RandomPayload(16), Generous)[0]);
        Assert.All(outcomes, o => Assert.Contains("Broadcast; rank 1 sent key 'op', world size 2, AllGather", Assert.IsType<InvalidOperationException>(o.Error).Message));
    }

    [Fact]
    public void DuplicateRankIsNamed()
    {
        var env = World(3);
        // Threads 1 and 2 both claim rank 1.
        var outcomes = RankThreads.Run(3, thread => Rendezvous.AllGather(env(Math.Min(thread, 1)), "twice", RandomPayload(16), Generous));
        Assert.All(outcomes, o => Assert.Contains("rank 1 arrived twice", Assert.IsType<InvalidOperationException>(o.Error).Message));
    }

    [Fact]
    public void BadArgumentsAreRejected()
    {
        var env = World(2);
        Assert.Throws<ArgumentOutOfRangeException>(() => Rendezvous.AllGather(env(0) with { Rank = 2 }, "k", [1], Generous));
        Assert.Throws<ArgumentOutOfRangeException>(() => Rendezvous.AllGather(env(0) with { Rank = -1 }, "k", [1], Generous));
        Assert.Throws<ArgumentOutOfRangeException>(() => Rendezvous.AllGather(env(0), "k", [1], TimeSpan.Zero));
        Assert.Throws<ArgumentNullException>(() => Rendezvous.AllGather(env(0), "k", null!, Generous));
        Assert.Throws<ArgumentNullException>(() => Rendezvous.Broadcast(env(0), "k", null, Generous));
        Assert.Throws<ArgumentNullException>(() => Rendezvous.AllGather(env(0), null!, [1], Generous));
        var longKey = Assert.Throws<ArgumentException>(() => Rendezvous.AllGather(env(0), new string('k', 2000), [1], Generous));
        Assert.Contains("2000", longKey.Message);
    }
}

