using System.Diagnostics;
using ModelParallel.Runtime.Launch;

namespace ModelParallel.Tests.Launch;

/// <summary>The launcher with real child processes (<c>dotnet mp.dll selftest ...</c>) over loopback.</summary>
public sealed class LauncherTests
{
    private static readonly TimeSpan Quickly = TimeSpan.FromSeconds(60);

    [Fact]
    public void FourRanksRendezvousAndEverySeesAll()
    {
        var log = new LineLog();
        int exitCode = Launcher.Run(MpChild.Options(4, "selftest", "rendezvous"), log, TestContext.Current.CancellationToken);
        Assert.True(exitCode == 0, log.ToString());
        var lines = log.Lines();
        for (int rank = 0; rank < 4; rank++)
        {
            Assert.Contains($"[rank {rank}] rank {rank} of 4 (local {rank} of 4) gathered 0,1,2,3", lines);
            Assert.Contains($"[rank {rank}] rank {rank} finished", lines); // written to stderr
        }
        Assert.Equal(8, lines.Length);
    }

    [Fact]
    public void TwoNodesOfTwoRanksFormOneWorld()
    {
        int port = Launcher.FindFreePort();
        var logs = new[] { new LineLog(), new LineLog() };
        var exitCodes = RankThreads.RunAll(2, node => Launcher.Run(
            MpChild.Options(2, "selftest", "rendezvous") with { Nnodes = 2, NodeRank = node, MasterAddr = "127.0.0.1", MasterPort = port },
            logs[node], TestContext.Current.CancellationToken));
        for (int node = 0; node < 2; node++)
        {
            Assert.True(exitCodes[node] == 0, logs[node].ToString());
            for (int local = 0; local < 2; local++)
            {
                int rank = 2 * node + local;
                Assert.Contains($"[rank {rank}] rank {rank} of 4 (local {local} of 2) gathered 0,1,2,3", logs[node].Lines());
            }
        }
    }

    [Fact]
    public void FailingRankStopsTheOthersAndIsNamed()
    {
        var log = new LineLog();
        var clock = Stopwatch.StartNew();
        int exitCode = Launcher.Run(MpChild.Options(4, "selftest", "fail", "2", "3"), log, TestContext.Current.CancellationToken);
        Assert.True(clock.Elapsed < Quickly, $"the launcher took {clock.Elapsed} (sleeping ranks were not stopped)");
        Assert.Equal(Launcher.FailedExitCode, exitCode);
        Assert.Equal("mp launch: rank 2 exited with code 3; stopped ranks 0, 1, 3", log.Lines()[^1]);
        var pids = MpChild.PrintedPids(log);
        Assert.Equal([0, 1, 2, 3], pids.Keys.Order());
        Assert.All(pids.Values, pid => Assert.True(MpChild.Vanishes(pid), $"process {pid} is still running"));
    }

    [Fact]
    public void StoppingARankKillsItsWholeProcessTree()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("uses /bin/sh");
        }
        string ready = Path.Combine(Path.GetTempPath(), $"mp-launch-{Guid.NewGuid():N}");
        // Rank 0 starts a grandchild that sleeps, says its pid and waits; rank 1 fails once the grandchild exists.
        string script = $$"""
            if [ "$RANK" = 0 ]; then sleep 120 & echo "grandchild $!"; touch '{{ready}}'; wait; fi
            while [ ! -e '{{ready}}' ]; do sleep 0.02; done
            exit 5
            """;
        var log = new LineLog();
        try
        {
            var clock = Stopwatch.StartNew();
            int exitCode = Launcher.Run(new LaunchOptions(2, "/bin/sh", ["-c", script]) { MasterPort = Launcher.FindFreePort() }, log, TestContext.Current.CancellationToken);
            Assert.True(clock.Elapsed < Quickly, $"the launcher took {clock.Elapsed}");
            Assert.Equal(Launcher.FailedExitCode, exitCode);
            Assert.Equal("mp launch: rank 1 exited with code 5; stopped rank 0", log.Lines()[^1]);
            string grandchild = Assert.Single(log.Lines(), l => l.StartsWith("[rank 0] grandchild ", StringComparison.Ordinal));
            int pid = int.Parse(grandchild.Split(' ')[^1]);
            Assert.True(MpChild.Vanishes(pid), $"grandchild {pid} is still running");
        }
        finally
        {
            File.Delete(ready);
        }
    }

    [Fact]
    public void CancellationStopsEveryRank()
    {
        var log = new LineLog();
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        int exitCode = -1;
        var launcher = new Thread(() => exitCode = Launcher.Run(MpChild.Options(2, "selftest", "sleep", "120"), log, cancel.Token));
        var clock = Stopwatch.StartNew();
        launcher.Start();
        while (MpChild.PrintedPids(log).Count < 2 && clock.Elapsed < Quickly)
        {
            Thread.Sleep(20);
        }
        var pids = MpChild.PrintedPids(log);
        Assert.Equal(2, pids.Count);
        cancel.Cancel();
        Assert.True(launcher.Join(Quickly), "the launcher did not return after cancellation");
        Assert.Equal(Launcher.InterruptedExitCode, exitCode);
        Assert.Equal("mp launch: interrupted; stopped ranks 0, 1", log.Lines()[^1]);
        Assert.All(pids.Values, pid => Assert.True(MpChild.Vanishes(pid), $"process {pid} is still running"));
    }

    [Fact]
    public void ProgramThatCannotStartIsNamed()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"no-such-program-{Guid.NewGuid():N}");
        var error = Assert.Throws<InvalidOperationException>(() => Launcher.Run(new LaunchOptions(2, missing, []), new LineLog(), TestContext.Current.CancellationToken));
        Assert.StartsWith($"cannot start '{missing}'", error.Message);
    }

    [Theory]
    [InlineData(0, 1, 0, "nproc-per-node must be at least 1, got 0")]
    [InlineData(2, 0, 0, "nnodes must be at least 1, got 0")]
    [InlineData(2, 2, 2, "node-rank 2 is out of range for nnodes 2 (expected 0 to 1)")]
    [InlineData(2, 2, -1, "node-rank -1 is out of range for nnodes 2 (expected 0 to 1)")]
    public void BadCountsAreNamed(int nprocPerNode, int nnodes, int nodeRank, string message)
    {
        var options = new LaunchOptions(nprocPerNode, "true", []) { Nnodes = nnodes, NodeRank = nodeRank, MasterAddr = "10.0.0.1", MasterPort = 29500 };
        Assert.Equal(message, Assert.Throws<ArgumentException>(() => Launcher.Run(options, new LineLog(), TestContext.Current.CancellationToken)).Message);
    }

    [Fact]
    public void SeveralNodesNeedAnAgreedMaster()
    {
        var options = new LaunchOptions(2, "true", []) { Nnodes = 2, NodeRank = 1 };
        var error = Assert.Throws<ArgumentException>(() => Launcher.Run(options, new LineLog(), TestContext.Current.CancellationToken));
        Assert.Equal("master-addr and master-port are required when nnodes is 2: every node must use the same ones", error.Message);
    }

    [Fact]
    public void BadMasterIsNamed()
    {
        var badPort = new LaunchOptions(1, "true", []) { MasterPort = 70000 };
        Assert.Equal("master-port 70000 is not a TCP port (expected 1 to 65535)", Assert.Throws<ArgumentException>(() => Launcher.Run(badPort, new LineLog(), TestContext.Current.CancellationToken)).Message);
        var badAddr = new LaunchOptions(1, "true", []) { MasterAddr = "two words" };
        Assert.Equal("master-addr 'two words' is not a host name or IP address", Assert.Throws<ArgumentException>(() => Launcher.Run(badAddr, new LineLog(), TestContext.Current.CancellationToken)).Message);
    }
}
