using System.Diagnostics;
using ModelParallel.Layers;
using ModelParallel.Runtime;

namespace ModelParallel.Training.Pipeline;

/// <summary>One action as this rank ran it: start and end in milliseconds from the start of the step.</summary>
public readonly record struct ExecutedAction(PipelineAction Action, double StartMs, double EndMs);

/// <summary>What one pipeline step gave this rank.</summary>
/// <param name="Loss">Mean loss over every token of the global batch (the same on every rank).</param>
/// <param name="Timeline">This rank's actions with their times (communication groups as one entry per action).</param>
/// <param name="P2PBytes">Bytes this rank sent to and received from its pipeline neighbours.</param>
public sealed record PipelineStepResult(double Loss, IReadOnlyList<ExecutedAction> Timeline, long P2PBytes);

/// <summary>
/// Runs any <see cref="PipelineSchedule"/> (with its communication actions) on this pipeline rank: the rank's stages
/// (chunk c is global stage c x ranks + rank), a replica of a stage per micro-batch in flight, activations sent forward
/// and gradients backward between neighbouring stages, each run of consecutive communication actions issued as one
/// group (<see cref="ICommunicator.BatchSendRecv"/>). On GPUs the transfers run on the transfer stream: the compute
/// stream waits for a received tensor only where it is used, and a stage replica whose tensors are being sent is freed
/// only once the device has finished sending them, so transfers overlap the compute between. The loss is normalised over every token of the global batch, so a
/// step's gradients are those of the whole batch whatever the ranks, micro-batches and virtual stages.
/// </summary>
public sealed class PipelineExecutor : IDisposable
{
    private readonly ParallelContext _context;
    private readonly ICommunicator _pipeline;
    private readonly PipelineSchedule _schedule;
    private readonly StageReplicas?[] _chunks;
    private readonly ICommunicator? _embeddingGroup;
    private readonly bool _synchronize;

    /// <param name="context">This rank's tensor-parallel context (backend, TP group, sequence parallelism, seed).</param>
    /// <param name="pipeline">The pipeline-parallel group; its size is the schedule's ranks.</param>
    /// <param name="synchronizeEachAction">Wait for the device after every action, so that the timeline shows each
    /// action's own time (for measuring; it stops communication from overlapping compute).</param>
    /// <param name="recomputeLayers">Layers at the start of every stage whose activations are recomputed in backward
    /// (capped at the stage's layers).</param>
    public PipelineExecutor(ParallelContext context, ICommunicator pipeline, GptConfig config, PipelineLayout layout,
        PipelineSchedule schedule, TokenShape microBatch, bool synchronizeEachAction = false, int recomputeLayers = 0)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentOutOfRangeException.ThrowIfNegative(recomputeLayers);
        if (pipeline.Size != schedule.Ranks)
        {
            throw new ArgumentException($"the pipeline group has {pipeline.Size} ranks; the schedule {schedule.Name} is for {schedule.Ranks}");
        }
        if (layout.Stages != schedule.Stages)
        {
            throw new ArgumentException($"the layout {layout} has {layout.Stages} stages; the schedule has {schedule.Stages} (ranks x virtual stages)");
        }
        if (layout.LayerCounts.Sum() != config.Layers)
        {
            throw new ArgumentException($"the layout {layout} holds {layout.LayerCounts.Sum()} layers; the model has {config.Layers}");
        }
        _context = context;
        _pipeline = pipeline;
        _schedule = schedule;
        _synchronize = synchronizeEachAction;
        Config = config;
        MicroBatch = microBatch;
        Rank = pipeline.Rank;
        int stages = schedule.Stages;
        _chunks = new StageReplicas?[schedule.VirtualStages];
        try
        {
            for (int c = 0; c < schedule.VirtualStages; c++)
            {
                int stage = c * schedule.Ranks + Rank;
                int layers = layout.LayerCounts[stage];
                _chunks[c] = new StageReplicas(owner => new GptStage(context, config, stage, stages, layout.FirstLayer(stage), layers,
                    Math.Min(recomputeLayers, layers), owner));
            }
            int firstRank = schedule.RankOfStage(0), lastRank = schedule.RankOfStage(stages - 1);
            if (config.ShareEmbeddingsAndOutputWeights && stages > 1 && firstRank != lastRank)
            {
                bool member = Rank == firstRank || Rank == lastRank;
                var group = pipeline.Split(member ? 0 : 1, Rank);
                if (member)
                {
                    _embeddingGroup = group;
                }
                else
                {
                    group.Dispose();
                }
            }
        }
        catch
        {
            Dispose();
            throw;
        }
        Parameters = _chunks.SelectMany(c => c!.Owner.Parameters).ToList();
    }

    public GptConfig Config { get; }

    public TokenShape MicroBatch { get; }

    /// <summary>This rank's index in the pipeline group.</summary>
    public int Rank { get; }

    /// <summary>The parameters of this rank's stages (a tied embedding copy on the last stage included).</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>The stages (owners) this rank runs, by chunk.</summary>
    public IEnumerable<GptStage> Stages => _chunks.Select(c => c!.Owner);

    /// <summary>Instances of each chunk's stage made so far: the peak number of micro-batches each held at once.</summary>
    public IReadOnlyList<int> PeakInFlight => _chunks.Select(c => c!.PeakInstances).ToList();

    /// <summary>
    /// One step: zeroes the gradients, runs this rank's actions for the micro-batches' ids and targets (int32, each
    /// [tokens of a micro-batch], sequence-major; every rank passes all of them, the first and last stages use them),
    /// then finalises the gradients (tensor-parallel partial sums, the tied embedding's two halves). Every rank of the
    /// pipeline and tensor-parallel groups must call it.
    /// </summary>
    public PipelineStepResult Step(IReadOnlyList<int[]> ids, IReadOnlyList<int[]> targets)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(targets);
        int m = _schedule.MicroBatches;
        if (ids.Count != m || targets.Count != m)
        {
            throw new ArgumentException($"{ids.Count} micro-batches of ids and {targets.Count} of targets; the schedule has {m}");
        }
        foreach (var p in Parameters)
        {
            p.ZeroGrad();
        }
        if (_synchronize && _pipeline.Size > 1)
        {
            // Every rank's clock starts together.
            using var barrier = _context.Backend.Allocate(_context.Backend.StatsType, 1);
            _context.Kernels.Fill(barrier, 0);
            _pipeline.AllReduce(barrier, barrier);
            _context.Backend.Synchronize();
        }
        using var run = new StepRun(this, ids, targets);
        run.Execute();
        FinalizeGradients();
        double loss = run.BroadcastLoss();
        return new PipelineStepResult(loss, run.Timeline, run.P2PBytes);
    }

    /// <summary>Full gradients of this rank's parameters by name (collective over the tensor-parallel group).</summary>
    public Dictionary<string, double[]> SaveGradients()
    {
        var result = new Dictionary<string, double[]>();
        foreach (var p in Parameters)
        {
            result.TryAdd(p.Name, p.SaveGrad());
        }
        return result;
    }

    private void FinalizeGradients()
    {
        foreach (var stage in Stages)
        {
            stage.FinalizeGradients();
        }
        if (!Config.ShareEmbeddingsAndOutputWeights || _schedule.Stages == 1)
        {
            return;
        }
        var first = Stages.Select(s => s.TiedEmbeddingWeight).FirstOrDefault(w => w is not null);
        var last = Stages.Select(s => s.TiedOutputWeight).FirstOrDefault(w => w is not null);
        if (first is not null && last is not null)
        {
            // Both ends on this rank (one pipeline rank, several virtual stages): sum locally.
            _context.Kernels.Axpy(first.Grad, 1f, last.Grad);
            _context.Kernels.Convert(last.Grad, first.Grad);
        }
        else if (_embeddingGroup is not null)
        {
            var grad = (first ?? last)!.Grad;
            _embeddingGroup.AllReduce(grad, grad);
        }
    }

    public void Dispose()
    {
        foreach (var chunk in _chunks)
        {
            chunk?.Dispose();
        }
        _embeddingGroup?.Dispose();
    }

    /// <summary>The state of one step: tensors in flight by (stage, micro-batch), what to free when, and the clock.</summary>
    private sealed class StepRun : IDisposable
    {
        private readonly PipelineExecutor _executor;
        private readonly IReadOnlyList<int[]> _ids;
        private readonly IReadOnlyList<int[]> _targets;
        private readonly IBackend _backend;
        private readonly PipelineSchedule _schedule;
        private readonly Dictionary<(int, int), Tensor> _received = [];
        private readonly Dictionary<(int, int), Tensor> _receivedGrad = [];
        private readonly Dictionary<(int, int), Tensor> _output = [];
        private readonly Dictionary<(int, int), Tensor> _inputGrad = [];
        private readonly Dictionary<(int, int), Tensor> _tokens = [];
        private readonly Dictionary<(int, int), int> _holds = [];
        private readonly Dictionary<(int Kind, int Stage, int MicroBatch), TransferGroup> _arrivals = [];
        private readonly Dictionary<(int, int), List<TransferGroup>> _sends = [];
        private readonly List<(int Stage, int MicroBatch)> _finishing = [];
        private readonly HashSet<(int, int)> _localOutputGrad = [];
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly List<ExecutedAction> _timeline = [];
        private readonly int _rows;
        private readonly int _hidden;
        private readonly double _lossScale;
        private double _lossSum;

        public StepRun(PipelineExecutor executor, IReadOnlyList<int[]> ids, IReadOnlyList<int[]> targets)
        {
            _executor = executor;
            _ids = ids;
            _targets = targets;
            _backend = executor._context.Backend;
            _schedule = executor._schedule;
            var shape = executor.MicroBatch;
            int tp = executor._context.TensorParallelSize;
            _rows = executor._context.SequenceParallel ? shape.Tokens / tp : shape.Tokens;
            _hidden = executor.Config.Transformer.HiddenSize;
            _lossScale = 1.0 / ((double)shape.Tokens * _schedule.MicroBatches);
        }

        public IReadOnlyList<ExecutedAction> Timeline => _timeline;

        public long P2PBytes { get; private set; }

        public void Execute()
        {
            var actions = _schedule.Actions[_executor.Rank];
            for (int i = 0; i < actions.Count;)
            {
                ReleaseFinished(wait: false);
                if (actions[i].IsCommunication)
                {
                    int end = i;
                    while (end < actions.Count && actions[end].IsCommunication)
                    {
                        end++;
                    }
                    Communicate(actions.Skip(i).Take(end - i).ToList());
                    i = end;
                }
                else
                {
                    double start = _clock.Elapsed.TotalMilliseconds;
                    Compute(actions[i]);
                    if (_executor._synchronize)
                    {
                        _backend.Synchronize();
                    }
                    _timeline.Add(new ExecutedAction(actions[i], start, _clock.Elapsed.TotalMilliseconds));
                    i++;
                }
            }
            ReleaseFinished(wait: true);
            if (_output.Count > 0 || _inputGrad.Count > 0 || _received.Count > 0 || _receivedGrad.Count > 0 || _holds.Count > 0)
            {
                throw new InvalidOperationException(
                    $"pipeline rank {_executor.Rank}: schedule {_schedule.Name} left tensors in flight " +
                    $"(outputs {Keys(_output)}, input gradients {Keys(_inputGrad)}) — a send or backward is missing");
            }
        }

        /// <summary>The mean loss, known on the last stage's rank, on every pipeline rank.</summary>
        public double BroadcastLoss()
        {
            using var value = _backend.Allocate(_backend.StatsType, 1);
            int lastRank = _schedule.RankOfStage(_schedule.Stages - 1);
            _backend.Upload(value, [_lossSum * _lossScale]);
            if (_schedule.Ranks > 1)
            {
                _executor._pipeline.Broadcast(value, value, lastRank);
            }
            var host = new double[1];
            _backend.Download(value, host);
            return host[0];
        }

        private void Compute(PipelineAction action)
        {
            var (kind, s, mb) = action;
            var chunk = Chunk(s);
            var shape = _executor.MicroBatch;
            switch (kind)
            {
                case ActionKind.Forward:
                {
                    var input = s == 0 ? Tokens(mb, _ids, "ids") : _received.TryGetValue((s, mb), out var received) ? Arrived(0, s, mb, received) : LocalOutput(s - 1, mb);
                    var stage = chunk.Rent(mb);
                    var y = stage.Forward(input, stage.IsLast ? Tokens(mb, _targets, "targets") : null, shape);
                    if (stage.IsLast)
                    {
                        var perToken = new double[y.Count];
                        _backend.Download(y, perToken);
                        _lossSum += perToken.Sum();
                    }
                    else
                    {
                        _output[(s, mb)] = y;
                    }
                    break;
                }
                case ActionKind.Backward:
                case ActionKind.BackwardInput:
                {
                    var stage = chunk.Of(mb);
                    bool local = !stage.IsLast && !_receivedGrad.ContainsKey((s, mb));
                    var dy = stage.IsLast ? null : local ? LocalInputGrad(s + 1, mb) : Arrived(1, s, mb, _receivedGrad[(s, mb)]);
                    bool defer = kind == ActionKind.BackwardInput;
                    var dx = stage.Backward(dy, _lossScale, defer);
                    if (local && !defer)
                    {
                        // The next stage's instance on this rank held dy (until W when the weight gradients wait, below).
                        Unhold(s + 1, mb);
                    }
                    else if (local)
                    {
                        _localOutputGrad.Add((s, mb));
                    }
                    Free(_received, (s, mb));
                    _output.Remove((s, mb));
                    // The instance stays busy while its input gradient waits to leave and while its weight gradients wait.
                    _holds[(s, mb)] = (dx is null ? 0 : 1) + (defer ? 1 : 0);
                    if (dx is not null)
                    {
                        _inputGrad[(s, mb)] = dx;
                    }
                    if (!defer)
                    {
                        Free(_receivedGrad, (s, mb));
                    }
                    ReleaseIfDone(s, mb);
                    break;
                }
                case ActionKind.BackwardWeight:
                {
                    if (!_holds.ContainsKey((s, mb)))
                    {
                        throw new InvalidOperationException($"{action} on pipeline rank {_executor.Rank}: no B-input ran before it");
                    }
                    chunk.Of(mb).BackwardWeights();
                    // The weight GEMMs read the output gradient: it is free only now.
                    Free(_receivedGrad, (s, mb));
                    if (_localOutputGrad.Remove((s, mb)))
                    {
                        Unhold(s + 1, mb);
                    }
                    Unhold(s, mb);
                    break;
                }
                default:
                    throw new InvalidOperationException($"{kind} is not a compute action");
            }
        }

        /// <summary>One reason fewer to keep (stage, mb)'s instance busy; released when none is left.</summary>
        private void Unhold(int stage, int mb)
        {
            _holds[(stage, mb)]--;
            ReleaseIfDone(stage, mb);
        }

        private void ReleaseIfDone(int stage, int mb)
        {
            if (_holds[(stage, mb)] == 0)
            {
                _holds.Remove((stage, mb));
                _finishing.Add((stage, mb));
                ReleaseFinished(wait: false);
            }
        }

        /// <summary>
        /// Frees the stage instances that are done and whose sent tensors have left (with <paramref name="wait"/>, after
        /// ordering the compute stream after their transfers).
        /// </summary>
        private void ReleaseFinished(bool wait)
        {
            for (int i = _finishing.Count - 1; i >= 0; i--)
            {
                var key = _finishing[i];
                var sends = _sends.GetValueOrDefault(key) ?? [];
                if (wait)
                {
                    sends.ForEach(g => g.Wait());
                }
                if (sends.All(g => g.IsComplete))
                {
                    _sends.Remove(key);
                    _finishing.RemoveAt(i);
                    Chunk(key.Stage).Release(key.MicroBatch);
                }
            }
        }

        /// <summary>A received tensor, once the compute stream is ordered after the transfer that brought it.</summary>
        private Tensor Arrived(int kind, int stage, int mb, Tensor tensor)
        {
            if (_arrivals.Remove((kind, stage, mb), out var group))
            {
                group.Wait();
            }
            return tensor;
        }

        private void Communicate(List<PipelineAction> group)
        {
            double start = _clock.Elapsed.TotalMilliseconds;
            var transfers = new List<PeerTransfer>();
            var sentGrads = new List<(int Stage, int MicroBatch)>();
            foreach (var (kind, s, mb) in group)
            {
                switch (kind)
                {
                    case ActionKind.SendActivation:
                        transfers.Add(PeerTransfer.Send(Need(_output, (s, mb), "SEND_F"), _schedule.RankOfStage(s + 1)));
                        break;
                    case ActionKind.RecvActivation:
                        transfers.Add(PeerTransfer.Recv(NewBuffer(_received, (s, mb), "RECV_F"), _schedule.RankOfStage(s - 1)));
                        break;
                    case ActionKind.SendGradient:
                        transfers.Add(PeerTransfer.Send(Need(_inputGrad, (s, mb), "SEND_B"), _schedule.RankOfStage(s - 1)));
                        sentGrads.Add((s, mb));
                        break;
                    case ActionKind.RecvGradient:
                        transfers.Add(PeerTransfer.Recv(NewBuffer(_receivedGrad, (s, mb), "RECV_B"), _schedule.RankOfStage(s + 1)));
                        break;
                    default:
                        throw new InvalidOperationException($"{kind} is not a communication action");
                }
            }
            var sent = _executor._pipeline.BatchSendRecv(transfers);
            foreach (var (kind, s, mb) in group)
            {
                switch (kind)
                {
                    case ActionKind.RecvActivation:
                        _arrivals[(0, s, mb)] = sent;
                        break;
                    case ActionKind.RecvGradient:
                        _arrivals[(1, s, mb)] = sent;
                        break;
                    default:
                        // SEND_F carries the output of (s, mb)'s instance, SEND_B its input gradient.
                        if (!_sends.TryGetValue((s, mb), out var list))
                        {
                            _sends[(s, mb)] = list = [];
                        }
                        list.Add(sent);
                        break;
                }
            }
            if (_executor._synchronize)
            {
                sent.Wait();
                _backend.Synchronize();
            }
            P2PBytes += transfers.Sum(t => t.Tensor.Bytes);
            foreach (var (s, mb) in sentGrads)
            {
                _inputGrad.Remove((s, mb));
                Unhold(s, mb);
            }
            double end = _clock.Elapsed.TotalMilliseconds;
            foreach (var action in group)
            {
                _timeline.Add(new ExecutedAction(action, start, end));
            }
        }

        private StageReplicas Chunk(int stage)
        {
            if (_schedule.RankOfStage(stage) != _executor.Rank)
            {
                throw new InvalidOperationException($"stage {stage} runs on pipeline rank {_schedule.RankOfStage(stage)}, not {_executor.Rank}");
            }
            return _executor._chunks[_schedule.ChunkOfStage(stage)]!;
        }

        /// <summary>Stage <paramref name="stage"/>'s output for the next stage on this rank (no communication between them).</summary>
        private Tensor LocalOutput(int stage, int mb) =>
            _schedule.RankOfStage(stage) == _executor.Rank
                ? Need(_output, (stage, mb), $"F(s{stage + 1},mb{mb})")
                : throw new InvalidOperationException($"F(s{stage + 1},mb{mb}) on rank {_executor.Rank}: no RECV_F brought stage {stage}'s output");

        /// <summary>The input gradient stage <paramref name="stage"/> computed on this rank, used (and its instance released) by the stage before it.</summary>
        private Tensor LocalInputGrad(int stage, int mb)
        {
            if (_schedule.RankOfStage(stage) != _executor.Rank)
            {
                throw new InvalidOperationException($"B(s{stage - 1},mb{mb}) on rank {_executor.Rank}: no RECV_B brought stage {stage}'s input gradient");
            }
            var dx = Need(_inputGrad, (stage, mb), $"B(s{stage - 1},mb{mb})");
            _inputGrad.Remove((stage, mb));
            return dx;
        }

        private Tensor Tokens(int mb, IReadOnlyList<int[]> source, string what)
        {
            if (!_tokens.TryGetValue((what == "ids" ? 0 : 1, mb), out var tensor))
            {
                var values = source[mb];
                if (values.Length != _executor.MicroBatch.Tokens)
                {
                    throw new ArgumentException($"micro-batch {mb} has {values.Length} {what}; a micro-batch of {_executor.MicroBatch} has {_executor.MicroBatch.Tokens} tokens");
                }
                tensor = _backend.Allocate(DType.Int32, values.Length);
                _backend.Upload(tensor, values);
                _tokens[(what == "ids" ? 0 : 1, mb)] = tensor;
            }
            return tensor;
        }

        private Tensor NewBuffer(Dictionary<(int, int), Tensor> into, (int, int) key, string what)
        {
            if (into.ContainsKey(key))
            {
                throw new InvalidOperationException($"{what}(s{key.Item1},mb{key.Item2}) on rank {_executor.Rank}: received twice");
            }
            var buffer = _backend.Allocate(_backend.Compute, (long)_rows * _hidden);
            into[key] = buffer;
            return buffer;
        }

        private Tensor Need(Dictionary<(int, int), Tensor> from, (int, int) key, string what) =>
            from.TryGetValue(key, out var t)
                ? t
                : throw new InvalidOperationException(
                    $"{what} on pipeline rank {_executor.Rank}: stage {key.Item1} micro-batch {key.Item2} has nothing to give (schedule {_schedule.Name} out of order)");

        private static void Free(Dictionary<(int, int), Tensor> from, (int, int) key)
        {
            if (from.Remove(key, out var t))
            {
                t.Dispose();
            }
        }

        private static string Keys(Dictionary<(int, int), Tensor> d) => d.Count == 0 ? "none" : string.Join(" ", d.Keys.Select(k => $"s{k.Item1}mb{k.Item2}"));

        public void Dispose()
        {
            foreach (var t in _received.Values.Concat(_receivedGrad.Values).Concat(_tokens.Values))
            {
                t.Dispose();
            }
        }
    }
}
