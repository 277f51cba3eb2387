using ModelParallel.Planner;

namespace ModelParallel.Tests.Planner;

public sealed class CommunicationTests
{
    private static readonly PlannerInputs Llama = Inputs.Llama70BOn16Nodes();

    [Fact]
    public void TensorParallelSendsFourRingAllReducesPerLayer()
    {
        var (m, c) = (Llama.Model, Llama.Cluster);
        var training = Llama.Training with { SequenceParallel = false };
        var t = Inputs.Pick(2, 4, 8);
        var b = Inputs.Pick(1, 2);
        var layers = Random.Shared.Next(1, 81);
        var layout = new ParallelLayout(t, 1, 128 / t, b);
        var bytes = 2.0 * m.SequenceLength * b * m.Hidden;
        var expected = layers * 4 * (2.0 * (t - 1) / t) * bytes / (c.IntraNodeBandwidth * training.CommunicationEfficiency);
        Assert.Equal(expected, CommunicationModel.TensorParallel(m, training, c, layout, layers).Value, new RelativeComparer(1e-12));
        // Sequence parallelism trades each all-reduce for an all-gather and a reduce-scatter: the same exposed volume.
        Assert.Equal(expected, CommunicationModel.TensorParallel(m, training with { SequenceParallel = true }, c, layout, layers).Value,
            new RelativeComparer(1e-12));
        // Full recomputation repeats the forward's two.
        Assert.Equal(1.5 * expected, CommunicationModel.TensorParallel(m, training with { Recompute = Recompute.Full }, c, layout, layers).Value,
            new RelativeComparer(1e-12));
    }

    [Fact]
    public void PipelineSendsTwicePerChunk()
    {
        var (m, c) = (Llama.Model, Llama.Cluster);
        var v = Inputs.Pick(1, 2, 5);
        var layout = new ParallelLayout(4, 4, 8, 1, v);
        var bytes = 2.0 * m.SequenceLength * m.Hidden / 4;
        Assert.Equal(2 * v * bytes / (c.InterNodeBandwidth * Llama.Training.CommunicationEfficiency),
            CommunicationModel.Pipeline(m, Llama.Training, c, layout).Value, new RelativeComparer(1e-12));
        Assert.Equal(0, CommunicationModel.Pipeline(m, Llama.Training, c, new ParallelLayout(8, 1, 16, 1)).Value);
    }

    [Fact]
    public void GroupsUseNvlinkOnlyInsideANode()
    {
        var c = Llama.Cluster;
        var t = Llama.Training;
        Assert.Equal("NVLink", CommunicationModel.DataLink(c, t, new ParallelLayout(2, 32, 2, 1)).Name);
        Assert.Equal("network", CommunicationModel.DataLink(c, t, new ParallelLayout(8, 1, 16, 1)).Name);
        Assert.Equal("network", CommunicationModel.PipelineLink(c, t).Name);
        Assert.Equal("NVLink", CommunicationModel.PipelineLink(Inputs.H100(1), t).Name);
    }

    [Fact]
    public void DataParallelVolumesFollowTheZeroStage()
    {
        var psi = 1e9 * (1 + Random.Shared.NextDouble());
        var d = Inputs.Pick(2, 4, 8, 16);
        var layout = new ParallelLayout(8, 128 / (8 * d), d, 1);
        var m = Random.Shared.Next(1, 65);
        var bw = Llama.Cluster.InterNodeBandwidth * Llama.Training.CommunicationEfficiency;
        double Total(int stage) => CommunicationModel.DataParallel(Llama.Training with { ZeroStage = stage }, Llama.Cluster, layout, psi, m, 0, 0)
            .Collectives.Sum(x => x.Value);
        var allReduce = 2.0 * (d - 1) / d * 2 * psi / bw;
        Assert.Equal(allReduce, Total(0), new RelativeComparer(1e-12));
        Assert.Equal(allReduce, Total(1), new RelativeComparer(1e-12));
        Assert.Equal((m + 1) * allReduce / 2, Total(2), new RelativeComparer(1e-12));
        Assert.Equal(m * 1.5 * allReduce, Total(3), new RelativeComparer(1e-12));
    }

    [Fact]
    public void GradientReductionHidesBehindTheLastBackward()
    {
        var layout = new ParallelLayout(8, 1, 16, 1);
        var psi = 8e9;
        var full = CommunicationModel.DataParallel(Llama.Training with { ZeroStage = 0 }, Llama.Cluster, layout, psi, 64, 1, 0);
        var window = full.Collectives[0].Value * Random.Shared.NextDouble();
        var hidden = CommunicationModel.DataParallel(Llama.Training with { ZeroStage = 0 }, Llama.Cluster, layout, psi, 64, 1, window);
        Assert.Equal(full.Collectives[0].Value - window, hidden.Exposed.Value, new RelativeComparer(1e-12));
        var covered = CommunicationModel.DataParallel(Llama.Training with { ZeroStage = 0 }, Llama.Cluster, layout, psi, 64, 1, 1e3);
        Assert.Equal(0, covered.Exposed.Value);
    }
}
