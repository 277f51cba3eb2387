namespace ModelParallel.Runtime;

/// <summary>
/// Tensor-, data- and pipeline-parallel groups split from a world in Megatron's order: TP varies
/// fastest, then DP, then PP (global rank = tp + TP * (dp + DP * pp)). Creating them is a collective
/// over the world. Disposing disposes the three sub-communicators, not the world.
/// </summary>
public sealed class ProcessGroups : IDisposable
{
    private ProcessGroups(int tp, int dp, int pp, ICommunicator tpGroup, ICommunicator dpGroup, ICommunicator ppGroup)
    {
        TensorParallelSize = tp;
        DataParallelSize = dp;
        PipelineParallelSize = pp;
        TensorParallel = tpGroup;
        DataParallel = dpGroup;
        PipelineParallel = ppGroup;
    }

    public int TensorParallelSize { get; }

    public int DataParallelSize { get; }

    public int PipelineParallelSize { get; }

    public ICommunicator TensorParallel { get; }

    public ICommunicator DataParallel { get; }

    public ICommunicator PipelineParallel { get; }

    /// <summary>Splits <paramref name="world"/> into TP x DP x PP groups; DP = world size / (TP * PP).</summary>
    public static ProcessGroups Create(ICommunicator world, int tensorParallel, int pipelineParallel = 1)
    {
        ArgumentNullException.ThrowIfNull(world);
        var (tp, pp, dp) = Validate(world.Size, tensorParallel, pipelineParallel);
        int rank = world.Rank;
        int tpRank = rank % tp;
        int dpRank = rank / tp % dp;
        int ppRank = rank / (tp * dp);
        ICommunicator? tpGroup = null, dpGroup = null;
        try
        {
            tpGroup = world.Split(dpRank + dp * ppRank, tpRank);
            dpGroup = world.Split(tpRank + tp * ppRank, dpRank);
            var ppGroup = world.Split(tpRank + tp * dpRank, ppRank);
            return new ProcessGroups(tp, dp, pp, tpGroup, dpGroup, ppGroup);
        }
        catch
        {
            tpGroup?.Dispose();
            dpGroup?.Dispose();
            throw;
        }
    }

    /// <summary>Checks the degrees against the world size and returns (TP, PP, DP).</summary>
    public static (int Tp, int Pp, int Dp) Validate(int worldSize, int tensorParallel, int pipelineParallel)
    {
        if (worldSize <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(worldSize), worldSize, "world size must be positive");
        }
        if (tensorParallel <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(tensorParallel), tensorParallel, "tensor-parallel size must be positive");
        }
        if (pipelineParallel <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(pipelineParallel), pipelineParallel, "pipeline-parallel size must be positive");
        }
        if (worldSize % (tensorParallel * pipelineParallel) != 0)
        {
            throw new ArgumentException(
                $"world size {worldSize} is not divisible by tensor-parallel {tensorParallel} x pipeline-parallel {pipelineParallel}");
        }
        return (tensorParallel, pipelineParallel, worldSize / (tensorParallel * pipelineParallel));
    }

    public void Dispose()
    {
        TensorParallel.Dispose();
        DataParallel.Dispose();
        PipelineParallel.Dispose();
    }
}
