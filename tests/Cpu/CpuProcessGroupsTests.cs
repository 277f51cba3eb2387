using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>Split and the Megatron rank layout of <see cref="ProcessGroups"/> over the thread communicator.</summary>
public sealed class CpuProcessGroupsTests
{
    /// <summary>The world ranks of the group's members, in group rank order, learnt by an all-gather over the group.</summary>
    private static int[] Members(RankContext ctx, ICommunicator group)
    {
        var mine = TestTensors.UploadInts(ctx.Backend, [ctx.Rank]);
        var all = ctx.Backend.Allocate(DType.Int32, group.Size);
        group.AllGather(mine, all);
        var members = new int[group.Size];
        ctx.Backend.Download(all, members);
        return members;
    }

    [Fact]
    public void Split_GroupsByColorAndOrdersByKeyThenRank()
    {
        var results = CpuWorld.Run(7, DType.Float32, ctx =>
        {
            // Odd ranks share key 0 (ties broken by rank); even ranks are ordered by descending rank.
            int color = ctx.Rank % 2;
            int key = color == 0 ? -ctx.Rank : 0;
            using var group = ctx.World.Split(color, key);
            return (group.Rank, group.Size, Members: Members(ctx, group));
        });
        int[] evens = [6, 4, 2, 0], odds = [1, 3, 5];
        for (int r = 0; r < 7; r++)
        {
            var expected = r % 2 == 0 ? evens : odds;
            Assert.Equal(expected, results[r].Members);
            Assert.Equal(expected.Length, results[r].Size);
            Assert.Equal(Array.IndexOf(expected, r), results[r].Rank);
        }
    }

    [Fact]
    public void Split_OfASplit_Works()
    {
        var results = CpuWorld.Run(8, DType.Float64, ctx =>
        {
            using var half = ctx.World.Split(ctx.Rank / 4, ctx.Rank);
            using var quarter = half.Split(half.Rank / 2, half.Rank);
            return Members(ctx, quarter);
        });
        for (int r = 0; r < 8; r++)
        {
            int first = r / 2 * 2;
            Assert.Equal([first, first + 1], results[r]);
        }
    }

    public static TheoryData<int, int, int> Layouts => new()
    {
        { 8, 2, 2 },
        { 8, 4, 1 },
        { 8, 1, 2 },
        { 8, 2, 4 },
        { 4, 2, 2 },
        { 6, 3, 1 },
        { 6, 1, 3 },
        { 1, 1, 1 },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void ProcessGroups_FollowMegatronOrder(int world, int tp, int pp)
    {
        int dp = world / (tp * pp);
        var results = CpuWorld.Run(world, DType.Float32, ctx =>
        {
            using var groups = ProcessGroups.Create(ctx.World, tp, pp);
            Assert.Equal((tp, dp, pp), (groups.TensorParallelSize, groups.DataParallelSize, groups.PipelineParallelSize));
            return (Tp: Members(ctx, groups.TensorParallel), Dp: Members(ctx, groups.DataParallel),
                Pp: Members(ctx, groups.PipelineParallel));
        });
        for (int g = 0; g < world; g++)
        {
            int tpRank = g % tp, dpRank = g / tp % dp, ppRank = g / (tp * dp);
            Assert.Equal(Enumerable.Range(0, tp).Select(t => t + tp * (dpRank + dp * ppRank)), results[g].Tp);
            Assert.Equal(Enumerable.Range(0, dp).Select(d => tpRank + tp * (d + dp * ppRank)), results[g].Dp);
            Assert.Equal(Enumerable.Range(0, pp).Select(p => tpRank + tp * (dpRank + dp * p)), results[g].Pp);
        }
    }

    [Fact]
    public void ProcessGroups_CollectivesStayInsideTheirGroups()
    {
        const int world = 8, tp = 2, pp = 2;
        var sums = CpuWorld.Run(world, DType.Float64, ctx =>
        {
            using var groups = ProcessGroups.Create(ctx.World, tp, pp);
            var value = TestTensors.Upload(ctx.Backend, [ctx.Rank + 1.0]);
            groups.TensorParallel.AllReduce(value, value);
            return TestTensors.Download(value)[0];
        });
        for (int g = 0; g < world; g++)
        {
            int first = g / tp * tp;
            Assert.Equal(first + 1 + first + 2, sums[g]);
        }
    }
}
