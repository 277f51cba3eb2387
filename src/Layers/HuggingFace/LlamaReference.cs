using ModelParallel.Runtime;
using ModelParallel.Runtime.SafeTensors;

namespace ModelParallel.Layers.HuggingFace;

/// <summary>A batch of token ids and targets, sequence-major (token t = s * batch + b), as the model takes them.</summary>
public sealed record LlamaBatch(int[] Ids, int[] Targets, TokenShape Shape)
{
    /// <summary>
    /// input_ids and targets (I64 or I32, [batch, seq], Hugging Face's batch-major order) of a reference file,
    /// transposed to sequence-major.
    /// </summary>
    public static LlamaBatch Read(ITensorReader reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        var ids = reference.Info("input_ids");
        var targets = reference.Info("targets");
        if (ids.Shape.Length != 2 || !ids.Shape.SequenceEqual(targets.Shape))
        {
            throw new InvalidDataException(
                $"input_ids [{string.Join(", ", ids.Shape)}] and targets [{string.Join(", ", targets.Shape)}] must both be [batch, seq]");
        }
        int batch = checked((int)ids.Shape[0]), seq = checked((int)ids.Shape[1]);
        var shape = new TokenShape(seq, batch);
        return new LlamaBatch(Transpose(reference, "input_ids", batch, seq), Transpose(reference, "targets", batch, seq), shape);
    }

    private static int[] Transpose(ITensorReader reference, string name, int batch, int seq)
    {
        var batchMajor = new int[checked(batch * seq)];
        reference.Read(name, 0, batchMajor);
        var result = new int[batchMajor.Length];
        for (int b = 0; b < batch; b++)
        {
            for (int s = 0; s < seq; s++)
            {
                result[s * batch + b] = batchMajor[b * seq + s];
            }
        }
        return result;
    }
}

/// <summary>One forward and backward of a model, in Hugging Face's terms.</summary>
/// <param name="Logits">[batch, seq, vocab] (batch-major, padding dropped).</param>
/// <param name="Loss">Mean cross-entropy over the batch's tokens.</param>
/// <param name="Gradients">Gradients of the mean loss by Hugging Face tensor name (those asked for).</param>
public sealed record LlamaOutputs(double[] Logits, double Loss, IReadOnlyDictionary<string, double[]> Gradients);

/// <summary>Runs a <see cref="GptModel"/> on a <see cref="LlamaBatch"/> and reads its results back in Hugging Face's layout.</summary>
public static class LlamaRun
{
    /// <summary>
    /// Forward, then backward of the mean loss and the gradient finalisation, on every rank of the tensor-parallel group
    /// (a collective); every rank gets the full outputs. Only the gradients of Hugging Face tensors for which
    /// <paramref name="wantGradient"/> is true are gathered (all when null); none when <paramref name="backward"/> is false.
    /// </summary>
    public static LlamaOutputs ForwardBackward(GptModel model, LlamaBatch batch, bool backward = true, Func<string, bool>? wantGradient = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(batch);
        var backend = model.Context.Backend;
        var shape = batch.Shape;
        int tokens = shape.Tokens;
        using var ids = backend.Allocate(DType.Int32, tokens);
        using var targets = backend.Allocate(DType.Int32, tokens);
        backend.Upload(ids, batch.Ids);
        backend.Upload(targets, batch.Targets);
        model.ZeroGrad();
        var localLogits = model.ForwardLogits(ids, shape);
        var logits = GatherLogits(model, localLogits, shape);
        var perToken = new double[tokens];
        backend.Download(model.Loss.Forward(localLogits, targets, tokens), perToken);
        double loss = perToken.Sum() / tokens;
        var gradients = new Dictionary<string, double[]>();
        if (backward)
        {
            model.Backward(1.0 / tokens);
            model.FinalizeGradients();
            var mappings = LlamaMapping.For(model.Config, model.PaddedVocabSize)
                .Where(m => m.Segments.Any(s => wantGradient?.Invoke(s.Source.Name) ?? true))
                .ToList();
            var wanted = mappings.Select(m => m.Parameter).ToHashSet();
            var full = model.Parameters.Where(p => wanted.Contains(p.Name)).ToDictionary(p => p.Name, p => p.SaveGrad());
            foreach (var (name, values) in LlamaMapping.ToHuggingFace(mappings, full))
            {
                if (wantGradient?.Invoke(name) ?? true)
                {
                    gradients[name] = values;
                }
            }
        }
        return new LlamaOutputs(logits, loss, gradients);
    }

    /// <summary>The full logits [batch, seq, vocab] from each rank's [tokens, paddedVocab / TP] (tokens sequence-major).</summary>
    private static double[] GatherLogits(GptModel model, Tensor local, TokenShape shape)
    {
        var context = model.Context;
        var backend = context.Backend;
        int size = context.TensorParallelSize, tokens = shape.Tokens, vocab = model.Config.VocabSize;
        int perRank = model.PaddedVocabSize / size;
        var host = new double[local.Count * size];
        if (size == 1)
        {
            backend.Download(local, host);
        }
        else
        {
            using var gathered = backend.Allocate(local.DType, local.Count * size);
            context.TensorParallel.AllGather(local, gathered);
            backend.Download(gathered, host);
        }
        var logits = new double[checked((long)tokens * vocab)];
        for (int r = 0; r < size; r++)
        {
            int first = r * perRank, columns = Math.Clamp(vocab - first, 0, perRank);
            for (int t = 0; t < tokens; t++)
            {
                int s = t / shape.Batch, b = t % shape.Batch;
                long source = ((long)r * tokens + t) * perRank;
                long target = ((long)b * shape.Sequence + s) * vocab + first;
                host.AsSpan(checked((int)source), columns).CopyTo(logits.AsSpan(checked((int)target), columns));
            }
        }
        return logits;
    }
}
