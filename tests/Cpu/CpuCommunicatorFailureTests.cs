using System.Collections.Concurrent;
using System.Diagnostics;
using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>The thread communicator never hangs: failures, disposal and timeouts end every pending call with a clear error.</summary>
public sealed class CpuCommunicatorFailureTests
{
    /// <summary>Far below the default timeout: a test that finishes within it proved that nothing waited for a timeout.</summary>
    private static readonly TimeSpan Fast = TimeSpan.FromSeconds(30);

    [Fact]
    public void RankThrowing_AbortsTheOthersPendingCollectives()
    {
        var aborts = new ConcurrentDictionary<int, RankFailedException>();
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<RankFailedException>(() => CpuWorld.Run(4, DType.Float32, ctx =>
        {
            var t = ctx.Backend.Allocate(DType.Float32, 7);
            ctx.Backend.Kernels.Fill(t, 1);
            if (ctx.Rank == 2)
            {
                Thread.Sleep(50);
                throw new InvalidOperationException("rank two gives up");
            }
            try
            {
                ctx.World.AllReduce(t, t);
            }
            catch (RankFailedException abort)
            {
                aborts[ctx.Rank] = abort;
                throw;
            }
        }));
        Assert.True(clock.Elapsed < Fast, $"took {clock.Elapsed}");
        Assert.Equal(2, error.Rank);
        Assert.IsType<InvalidOperationException>(error.InnerException);
        Assert.Contains("rank 2", error.Message);
        Assert.Contains("rank two gives up", error.Message);
        Assert.Equal([0, 1, 3], aborts.Keys.Order());
        Assert.All(aborts.Values, abort =>
        {
            Assert.Equal(2, abort.Rank);
            Assert.Contains("rank 2 failed", abort.Message);
        });
    }

    [Fact]
    public void RankThrowing_AbortsCollectivesOfSplitGroups()
    {
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<RankFailedException>(() => CpuWorld.Run(4, DType.Float64, ctx =>
        {
            using var pair = ctx.World.Split(ctx.Rank / 2, ctx.Rank);
            if (ctx.Rank == 3)
            {
                throw new InvalidOperationException("rank three gives up");
            }
            var t = ctx.Backend.Allocate(DType.Float64, 3);
            ctx.Backend.Kernels.Fill(t, 1);
            pair.AllReduce(t, t);
        }));
        Assert.True(clock.Elapsed < Fast, $"took {clock.Elapsed}");
        Assert.Equal(3, error.Rank);
        Assert.IsType<InvalidOperationException>(error.InnerException);
    }

    [Fact]
    public void RankLeavingEarly_FailsTheOthersNamingIt()
    {
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<RankFailedException>(() => CpuWorld.Run(3, DType.Float32, ctx =>
        {
            if (ctx.Rank == 0)
            {
                return;
            }
            var t = ctx.Backend.Allocate(DType.Float32, 5);
            ctx.Backend.Kernels.Fill(t, 2);
            ctx.World.AllReduce(t, t);
        }));
        Assert.True(clock.Elapsed < Fast, $"took {clock.Elapsed}");
        var abort = Assert.IsType<RankFailedException>(error.InnerException);
        Assert.Equal(0, abort.Rank);
        Assert.Contains("rank 0", abort.Message);
        Assert.Contains("disposed", abort.Message);
    }

    [Fact]
    public void CollectiveWaitingPastTheTimeout_ThrowsNamingTheMissingRank()
    {
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<RankFailedException>(() => CpuWorld.Run(3, DType.Float32, ctx =>
        {
            var t = ctx.Backend.Allocate(DType.Float32, 5);
            ctx.Backend.Kernels.Fill(t, 1);
            if (ctx.Rank == 0)
            {
                Thread.Sleep(TimeSpan.FromSeconds(1));
            }
            ctx.World.AllReduce(t, t);
        }, collectiveTimeout: TimeSpan.FromMilliseconds(200)));
        Assert.True(clock.Elapsed < Fast, $"took {clock.Elapsed}");
        var timeout = Assert.IsType<TimeoutException>(error.InnerException);
        Assert.Contains("AllReduce", timeout.Message);
        Assert.Contains("waiting for rank(s) 0 ", timeout.Message);
    }

    [Fact]
    public void RecvWaitingPastTheTimeout_ThrowsNamingThePeer()
    {
        var error = Assert.Throws<RankFailedException>(() => CpuWorld.Run(2, DType.Float64, ctx =>
        {
            var t = ctx.Backend.Allocate(DType.Float64, 5);
            if (ctx.Rank == 0)
            {
                ctx.World.Recv(t, 1);
            }
            else
            {
                Thread.Sleep(TimeSpan.FromSeconds(1));
            }
        }, collectiveTimeout: TimeSpan.FromMilliseconds(200)));
        Assert.Equal(0, error.Rank);
        var timeout = Assert.IsType<TimeoutException>(error.InnerException);
        Assert.Contains("Recv on rank 0", timeout.Message);
        Assert.Contains("waiting for rank(s) 1 ", timeout.Message);
    }

    [Fact]
    public void MismatchedCountsBetweenRanks_ThrowOnEveryRankNamingBothCounts()
    {
        var results = CpuWorld.Run(3, DType.Float32, ctx =>
        {
            var t = ctx.Backend.Allocate(DType.Float32, ctx.Rank == 2 ? 6 : 5);
            ctx.Backend.Kernels.Fill(t, 1);
            var error = Assert.Throws<ArgumentException>(() => ctx.World.AllReduce(t, t));
            // The group is still usable afterwards.
            var ok = ctx.Backend.Allocate(DType.Float32, 4);
            ctx.Backend.Kernels.Fill(ok, ctx.Rank);
            ctx.World.AllReduce(ok, ok);
            return (error.Message, TestTensors.Download(ok));
        });
        Assert.All(results, result =>
        {
            Assert.Contains("5 Float32", result.Message);
            Assert.Contains("6 Float32", result.Message);
            Assert.Equal([3.0, 3.0, 3.0, 3.0], result.Item2);
        });
    }

    [Fact]
    public void MismatchedDTypesBetweenRanks_ThrowOnEveryRankNamingBoth()
    {
        var messages = CpuWorld.Run(2, DType.Float64, ctx =>
        {
            var t = ctx.Backend.Allocate(ctx.Rank == 0 ? DType.Float32 : DType.Float64, 3);
            ctx.Backend.Kernels.Fill(t, 1);
            return Assert.Throws<ArgumentException>(() => ctx.World.Broadcast(t, t, 0)).Message;
        });
        Assert.All(messages, message =>
        {
            Assert.Contains("Float32", message);
            Assert.Contains("Float64", message);
        });
    }

    [Fact]
    public void DifferentCollectivesOnDifferentRanks_ThrowOnEveryRank()
    {
        var messages = CpuWorld.Run(2, DType.Float32, ctx =>
        {
            var t = ctx.Backend.Allocate(DType.Float32, 3);
            ctx.Backend.Kernels.Fill(t, 1);
            return Assert.Throws<ArgumentException>(() =>
            {
                if (ctx.Rank == 0)
                {
                    ctx.World.AllReduce(t, t);
                }
                else
                {
                    ctx.World.Broadcast(t, t, 0);
                }
            }).Message;
        });
        Assert.All(messages, message =>
        {
            Assert.Contains("AllReduce", message);
            Assert.Contains("Broadcast", message);
        });
    }

    [Fact]
    public void MismatchedSendAndRecvCounts_ThrowOnBothRanks()
    {
        var messages = CpuWorld.Run(2, DType.Float32, ctx =>
        {
            var send = ctx.Backend.Allocate(DType.Float32, ctx.Rank == 0 ? 9 : 8);
            ctx.Backend.Kernels.Fill(send, 1);
            var recv = ctx.Backend.Allocate(DType.Float32, 8);
            int peer = 1 - ctx.Rank;
            return Assert.Throws<ArgumentException>(() => ctx.World.SendRecv(send, peer, recv, peer)).Message;
        });
        Assert.Contains("9 Float32", messages[1]);
        Assert.Contains("8 Float32", messages[1]);
        Assert.Contains("9 Float32", messages[0]);
    }

    [Fact]
    public void WrongLocalSizes_ThrowNamingBothSizes()
    {
        CpuWorld.Run(2, DType.Float32, ctx =>
        {
            var backend = ctx.Backend;
            var four = backend.Allocate(DType.Float32, 4);
            var five = backend.Allocate(DType.Float32, 5);
            var asDouble = backend.Allocate(DType.Float64, 4);
            backend.Kernels.Fill(four, 1);
            backend.Kernels.Fill(five, 1);

            var allReduce = Assert.Throws<ArgumentException>(() => ctx.World.AllReduce(four, five));
            Assert.Contains("4", allReduce.Message);
            Assert.Contains("5", allReduce.Message);
            var allGather = Assert.Throws<ArgumentException>(() => ctx.World.AllGather(four, five));
            Assert.Contains("recv has 5", allGather.Message);
            Assert.Contains("= 8", allGather.Message);
            var reduceScatter = Assert.Throws<ArgumentException>(() => ctx.World.ReduceScatter(five, four));
            Assert.Contains("send has 5", reduceScatter.Message);
            Assert.Contains("= 8", reduceScatter.Message);
            var broadcast = Assert.Throws<ArgumentException>(() => ctx.World.Broadcast(five, four, 0));
            Assert.Contains("5", broadcast.Message);
            var dtype = Assert.Throws<ArgumentException>(() => ctx.World.AllReduce(four, asDouble));
            Assert.Contains("Float64", dtype.Message);
            var partial = Assert.Throws<ArgumentException>(() => ctx.World.AllReduce(five.Slice(0, 4), five.Slice(1, 4)));
            Assert.Contains("overlap", partial.Message);
        });
    }

    [Fact]
    public void PeersAndRootsOutOfRange_ThrowNamingThem()
    {
        CpuWorld.Run(2, DType.Float64, ctx =>
        {
            var t = ctx.Backend.Allocate(DType.Float64, 3);
            ctx.Backend.Kernels.Fill(t, 1);
            var send = Assert.Throws<ArgumentOutOfRangeException>(() => ctx.World.Send(t, 2));
            Assert.Equal("peer", send.ParamName);
            Assert.Contains("2", send.Message);
            Assert.Equal("peer", Assert.Throws<ArgumentOutOfRangeException>(() => ctx.World.Recv(t, -1)).ParamName);
            Assert.Equal("recvPeer", Assert.Throws<ArgumentOutOfRangeException>(() => ctx.World.SendRecv(t, 0, t, 7)).ParamName);
            Assert.Equal("root", Assert.Throws<ArgumentOutOfRangeException>(() => ctx.World.Broadcast(t, t, 5)).ParamName);
            Assert.Equal("root", Assert.Throws<ArgumentOutOfRangeException>(() => ctx.World.Reduce(t, t, ReduceOp.Sum, -1)).ParamName);
            Assert.Equal("color", Assert.Throws<ArgumentOutOfRangeException>(() => ctx.World.Split(-1, 0)).ParamName);
        });
    }

    [Fact]
    public void TensorsOfAnotherBackend_AndDisposedTensors_Throw()
    {
        using var foreign = new CpuBackend(DType.Float32);
        var foreignTensor = foreign.Allocate(DType.Float32, 3);
        CpuWorld.Run(1, DType.Float32, ctx =>
        {
            var own = ctx.Backend.Allocate(DType.Float32, 3);
            ctx.Backend.Kernels.Fill(own, 1);
            Assert.Contains("another backend", Assert.Throws<ArgumentException>(() => ctx.World.AllReduce(foreignTensor, own)).Message);
            var gone = ctx.Backend.Allocate(DType.Float32, 3);
            gone.Dispose();
            Assert.Throws<ObjectDisposedException>(() => ctx.World.AllReduce(own, gone));
        });
    }

    [Fact]
    public void DisposedCommunicator_Throws()
    {
        CpuWorld.Run(2, DType.Float32, ctx =>
        {
            var sub = ctx.World.Split(0, ctx.Rank);
            sub.Dispose();
            var t = ctx.Backend.Allocate(DType.Float32, 3);
            Assert.Throws<ObjectDisposedException>(() => sub.AllReduce(t, t));
        });
    }

    [Fact]
    public void Run_RejectsBadWorldSizeAndComputeType()
    {
        Assert.Equal("worldSize", Assert.Throws<ArgumentOutOfRangeException>(() => CpuWorld.Run(0, DType.Float32, _ => { })).ParamName);
        Assert.Contains("BFloat16", Assert.Throws<ArgumentException>(() => CpuWorld.Run(1, DType.BFloat16, _ => { })).Message);
    }
}
