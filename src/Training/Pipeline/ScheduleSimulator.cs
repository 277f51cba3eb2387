namespace ModelParallel.Training.Pipeline;

/// <summary>
/// Replays a schedule with costs (torch.distributed.pipelining's _simulate_comms_compute, with time): each rank runs
/// its actions in order, an action starting when the rank is free and its inputs are there.
/// <list type="bullet">
/// <item>Full schedules (with communication): a consecutive run of communication actions on a rank is one group,
/// posted when the rank reaches it. A group completes when every matching peer action has been posted
/// (rendezvous, as blocking grouped NCCL send/recv), at max(own post, peers' posts) + P2P; its transfers run
/// concurrently. A send also waits for the compute that produces its data. F(s) uses RECV_F(s) from another rank,
/// the backward of s uses RECV_B(s).</item>
/// <item>Compute-only schedules: F(s, mb) waits for the end of F(s - 1, mb), plus P2P when that ran on another
/// rank; the backward (B or I) of s waits likewise for the backward of s + 1; W waits for its I.</item>
/// </list>
/// When no rank can make progress before all are done, the schedule deadlocks: an
/// <see cref="InvalidOperationException"/> names what each rank is blocked on. The schedule is validated first.
/// </summary>
public static class ScheduleSimulator
{
    public static SimulationResult Simulate(PipelineSchedule schedule, StageCosts costs)
    {
        ScheduleValidator.Validate(schedule);
        ArgumentNullException.ThrowIfNull(costs);
        costs.Check();
        return new Run(schedule, costs).Execute();
    }

    private sealed class Run
    {
        private readonly PipelineSchedule _s;
        private readonly StageCosts _costs;
        private readonly bool _full;
        private readonly double[,,] _end;   // [kind, stage, mb]: compute end, or a group's completion for comm
        private readonly double[,,] _posted; // [kind, stage, mb]: when a comm action's group was reached
        private readonly List<List<PipelineAction>>[] _items; // per rank: a compute action alone, or a comm group
        private readonly int[] _next;
        private readonly double[] _free;
        private readonly List<TimedAction>[] _timeline;

        public Run(PipelineSchedule s, StageCosts costs)
        {
            _s = s;
            _costs = costs;
            _full = s.Actions.Any(a => a.Any(x => x.IsCommunication));
            _end = Fill(new double[8, s.Stages, s.MicroBatches]);
            _posted = Fill(new double[8, s.Stages, s.MicroBatches]);
            _items = new List<List<PipelineAction>>[s.Ranks];
            _next = new int[s.Ranks];
            _free = new double[s.Ranks];
            _timeline = new List<TimedAction>[s.Ranks];
            for (int r = 0; r < s.Ranks; r++)
            {
                _timeline[r] = new List<TimedAction>(s.Actions[r].Count);
                var items = new List<List<PipelineAction>>();
                foreach (var a in s.Actions[r])
                {
                    if (a.IsCommunication && items.Count > 0 && items[^1][0].IsCommunication)
                    {
                        items[^1].Add(a);
                    }
                    else
                    {
                        items.Add([a]);
                    }
                }
                _items[r] = items;
            }
        }

        public SimulationResult Execute()
        {
            int p = _s.Ranks;
            bool progress = true;
            while (progress)
            {
                progress = false;
                for (int r = 0; r < p; r++)
                {
                    while (_next[r] < _items[r].Count && TryAdvance(r))
                    {
                        progress = true;
                    }
                    if (_next[r] < _items[r].Count && Post(r))
                    {
                        progress = true;
                    }
                }
            }
            if (Enumerable.Range(0, p).Any(r => _next[r] < _items[r].Count))
            {
                throw new InvalidOperationException(
                    $"pipeline schedule '{_s.Name}' deadlocks: {string.Join("; ", Enumerable.Range(0, p).Select(Blocked))}");
            }

            double makespan = _timeline.Max(t => t.Count == 0 ? 0 : t.Max(x => x.End));
            var compute = new double[p];
            var idle = new double[p];
            var peak = new int[p];
            for (int r = 0; r < p; r++)
            {
                compute[r] = _timeline[r].Where(t => t.Action.IsCompute).Sum(t => t.Duration);
                idle[r] = makespan - compute[r];
                int inFlight = 0;
                foreach (var a in _s.Actions[r])
                {
                    inFlight += a.Kind switch
                    {
                        ActionKind.Forward => 1,
                        ActionKind.Backward or ActionKind.BackwardWeight => -1,
                        _ => 0,
                    };
                    peak[r] = Math.Max(peak[r], inFlight);
                }
            }
            return new SimulationResult(_s, _costs, _timeline, makespan, compute, idle, peak);
        }

        /// <summary>Records the post time of the comm group rank r has reached; true when newly posted.</summary>
        private bool Post(int r)
        {
            var item = _items[r][_next[r]];
            if (!item[0].IsCommunication || !double.IsNaN(Get(_posted, item[0])))
            {
                return false;
            }
            foreach (var a in item)
            {
                Set(_posted, a, _free[r]);
            }
            return true;
        }

        private bool TryAdvance(int r)
        {
            var item = _items[r][_next[r]];
            double ready = _free[r];
            if (item[0].IsCompute)
            {
                var a = item[0];
                double input = InputReady(r, a);
                if (double.IsNaN(input))
                {
                    return false;
                }
                double start = Math.Max(ready, input);
                double end = start + _costs.Of(a.Kind);
                Set(_end, a, end);
                _timeline[r].Add(new(a, start, end));
                _free[r] = end;
                _next[r]++;
                return true;
            }

            Post(r);
            double meet = ready;
            foreach (var a in item)
            {
                double t = Get(_posted, Peer(a));
                if (double.IsNaN(t) || (a.Kind is ActionKind.SendActivation or ActionKind.SendGradient
                    && double.IsNaN(ProducerEnd(a))))
                {
                    return false;
                }
                meet = Math.Max(meet, t);
            }
            double done = meet + _costs.P2P;
            foreach (var a in item)
            {
                Set(_end, a, done);
                _timeline[r].Add(new(a, meet, done));
            }
            _free[r] = done;
            _next[r]++;
            return true;
        }

        /// <summary>When the inputs of compute action a on rank r are there; NaN while they are not.</summary>
        private double InputReady(int r, PipelineAction a)
        {
            int s = a.Stage, mb = a.MicroBatch, last = _s.Stages - 1;
            switch (a.Kind)
            {
                case ActionKind.Forward:
                    return s == 0 ? 0 : FromNeighbour(r, s - 1, ActionKind.Forward, ActionKind.RecvActivation, a);
                case ActionKind.Backward:
                case ActionKind.BackwardInput:
                {
                    double own = _end[(int)ActionKind.Forward, s, mb];
                    if (double.IsNaN(own) || s == last)
                    {
                        return own;
                    }
                    double grad = FromNeighbour(r, s + 1, ActionKind.Backward, ActionKind.RecvGradient, a);
                    return double.IsNaN(grad) ? grad : Math.Max(own, grad);
                }
                default:
                    return _end[(int)ActionKind.BackwardInput, s, mb];
            }
        }

        private double FromNeighbour(int r, int neighbour, ActionKind producer, ActionKind recv, PipelineAction a)
        {
            int mb = a.MicroBatch;
            if (_s.RankOfStage(neighbour) != r)
            {
                if (_full)
                {
                    return _end[(int)recv, a.Stage, mb];
                }
                double sent = ProducedEnd(producer, neighbour, mb);
                return double.IsNaN(sent) ? sent : sent + _costs.P2P;
            }
            return ProducedEnd(producer, neighbour, mb);
        }

        /// <summary>End of F, or of the backward (B or I, whichever the schedule has) of (stage, mb).</summary>
        private double ProducedEnd(ActionKind producer, int stage, int mb) => producer == ActionKind.Forward
            ? _end[(int)ActionKind.Forward, stage, mb]
            : Max(_end[(int)ActionKind.Backward, stage, mb], _end[(int)ActionKind.BackwardInput, stage, mb]);

        private double ProducerEnd(PipelineAction send) => send.Kind == ActionKind.SendActivation
            ? ProducedEnd(ActionKind.Forward, send.Stage, send.MicroBatch)
            : ProducedEnd(ActionKind.Backward, send.Stage, send.MicroBatch);

        private static double Max(double a, double b) => double.IsNaN(a) ? b : double.IsNaN(b) ? a : Math.Max(a, b);

        /// <summary>The action on the other rank that a communication action pairs with.</summary>
        private static PipelineAction Peer(PipelineAction a) => a.Kind switch
        {
            ActionKind.SendActivation => new(ActionKind.RecvActivation, a.Stage + 1, a.MicroBatch),
            ActionKind.RecvActivation => new(ActionKind.SendActivation, a.Stage - 1, a.MicroBatch),
            ActionKind.SendGradient => new(ActionKind.RecvGradient, a.Stage - 1, a.MicroBatch),
            ActionKind.RecvGradient => new(ActionKind.SendGradient, a.Stage + 1, a.MicroBatch),
            _ => throw new ArgumentOutOfRangeException(nameof(a), a, "not a communication action"),
        };

        private string Blocked(int r)
        {
            if (_next[r] >= _items[r].Count)
            {
                return $"rank {r} done";
            }
            var item = _items[r][_next[r]];
            if (item[0].IsCompute)
            {
                return $"rank {r} blocked at {item[0]} waiting for its input";
            }
            var waiting = item.Where(a => double.IsNaN(Get(_posted, Peer(a)))).Select(a =>
            {
                var peer = Peer(a);
                return $"{a} waiting for {peer} on rank {_s.RankOfStage(peer.Stage)}";
            });
            return $"rank {r} blocked at group [{string.Join(" ", item)}]: {string.Join(", ", waiting)}";
        }

        private static double Get(double[,,] table, PipelineAction a) => table[(int)a.Kind, a.Stage, a.MicroBatch];

        private static void Set(double[,,] table, PipelineAction a, double value) =>
            table[(int)a.Kind, a.Stage, a.MicroBatch] = value;

        private static double[,,] Fill(double[,,] table)
        {
            for (int k = 0; k < table.GetLength(0); k++)
            {
                for (int s = 0; s < table.GetLength(1); s++)
                {
                    for (int mb = 0; mb < table.GetLength(2); mb++)
                    {
                        table[k, s, mb] = double.NaN;
                    }
                }
            }
            return table;
        }
    }
}
