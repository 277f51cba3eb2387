using ModelParallel.Layers;
using ModelParallel.Runtime;

namespace ModelParallel.Tests.Layers;

/// <summary>Replicas of a layer that share its parameters (one per micro-batch in flight in a pipeline).</summary>
public class ShareParametersTests
{
    private static readonly TransformerConfig Config = new(32, AttentionHeads: 4, QueryGroups: 1, FfnHiddenSize: 64);

    [Fact]
    public void AReplicaUsesTheSameWeightsAndGradientsAndFreesThemLast()
    {
        TestWorld.Cpu(DType.Float64).Run(2, ctx =>
        {
            var context = new ParallelContext(ctx.Backend, ctx.World, sequenceParallel: true);
            var owner = new TransformerLayer(context, "layer", Config);
            TransformerLayer replica;
            using (context.ShareParameters(owner.Parameters))
            {
                replica = new TransformerLayer(context, "layer", Config);
            }
            Assert.Equal(owner.Parameters.Count, replica.Parameters.Count);
            Assert.All(owner.Parameters.Zip(replica.Parameters), p => Assert.Same(p.First, p.Second));
            // Key/value heads replicated over the two ranks: the replica reuses the owner's reduction group.
            Assert.NotNull(owner.Attention.Qkv.Weight.Reduction);
            replica.Dispose();
            var weight = owner.Mlp.Fc1.Weight;
            var values = new double[weight.LocalCount];
            ctx.Backend.Download(weight.Value, values);
            Assert.Contains(values, v => v != 0);
            owner.Dispose();
        });
    }

    [Fact]
    public void ALayerThatDiffersFromItsOriginalIsRefused()
    {
        TestWorld.Cpu(DType.Float64).Run(1, ctx =>
        {
            var context = new ParallelContext(ctx.Backend, ctx.World);
            using var owner = new ColumnParallelLinear(context, "a", 8, 16);
            using (context.ShareParameters(owner.Parameters))
            {
                Assert.Contains("b.weight: no parameter of that name to share",
                    Assert.Throws<ArgumentException>(() => new ColumnParallelLinear(context, "b", 8, 16)).Message, StringComparison.Ordinal);
                Assert.Contains("a.weight: the shared parameter is [16, 8]; the layer needs [16, 4]",
                    Assert.Throws<ArgumentException>(() => new ColumnParallelLinear(context, "a", 4, 16)).Message, StringComparison.Ordinal);
                Assert.Throws<InvalidOperationException>(() => context.ShareParameters(owner.Parameters));
            }
        });
    }
}
