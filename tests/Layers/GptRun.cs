using ModelParallel.Layers;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Layers;

/// <summary>What one rank saw in one forward and backward of a <see cref="GptModel"/>.</summary>
internal sealed record GptRun(
    double[] Loss,
    Dictionary<string, double[]> Grads,
    CommunicationSummary Forward,
    CommunicationSummary Backward,
    CommunicationSummary GradientSync)
{
    /// <summary>On each rank: the model with <paramref name="weights"/>, forward on ids and targets, backward of the mean loss.</summary>
    public static GptRun[] Run(TestWorld world, int tp, bool sequenceParallel, GptConfig config,
        IReadOnlyDictionary<string, double[]> weights, int[] ids, int[] targets, TokenShape shape) =>
        world.Collect(tp, ctx =>
        {
            var context = new ParallelContext(ctx.Backend, ctx.World, sequenceParallel);
            using var model = new GptModel(context, config);
            model.Load(weights);
            using var idTensor = TestTensors.UploadInts(ctx.Backend, ids);
            using var targetTensor = TestTensors.UploadInts(ctx.Backend, targets);
            var loss = TestTensors.Download(model.Forward(idTensor, targetTensor, shape));
            model.Backward(1.0 / shape.Tokens);
            model.FinalizeGradients();
            return new GptRun(loss, model.SaveGradients(), model.Communication(CommunicationPhase.Forward),
                model.Communication(CommunicationPhase.Backward), model.Communication(CommunicationPhase.GradientSync));
        });

    public static int[] RandomTokens(Random rng, int count, int vocab) => Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();
}
