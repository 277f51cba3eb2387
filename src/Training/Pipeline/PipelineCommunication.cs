namespace ModelParallel.Training.Pipeline;

/// <summary>
/// Lowers a compute-only schedule to one with point-to-point communication (torch.distributed.pipelining's
/// _add_send_recv). Wherever neighbouring stages live on different ranks (always when p &gt; 1; never when p = 1):
/// F(s, mb) is followed by SEND_F(s, mb) and consumed by F(s + 1, mb) after RECV_F(s + 1, mb); the backward (B or I)
/// of s is followed by SEND_B(s, mb), and the backward of s - 1 comes after RECV_B(s - 1, mb). W moves nothing.
/// <para>Execution contract: a run of consecutive communication actions on a rank is one group, posted together
/// and completing together once every peer has posted its side (ncclGroupStart/End, torch's batch_isend_irecv,
/// with blocking completion); transfers between two ranks pair in the order posted. A transfer sent before action x
/// of its sender and received before action y of its receiver therefore makes action y wait for the end of the
/// sender's action x - 1, and action x for the end of the receiver's action y - 1: with positive costs the lowered
/// schedule runs as the compute-only one with those precedences added, and deadlocks exactly when they close a
/// cycle. Insert works on that graph, with <c>placement</c> costs (default F = I = W = 1, B = 2), and never closes
/// a cycle. Two placements are made, and the one with the shorter makespan kept (the first on a tie):</para>
/// <list type="number">
/// <item>On the timeline: transfers in the order their data is produced, each where both ranks are between actions
/// at the same moment of the current timeline, at or after the producer's end and not after the consumer's start,
/// so nothing moves; when there is no such moment, the slots (a few either side of the earliest send and the latest
/// receive first) that lengthen the makespan least, then delay the actions least. A receive may so be posted
/// early, before actions that do not need it. GPipe, 1F1B and ZB-H1 keep their compute-only makespan this way, and so
/// does interleaved 1F1B with m = p (ranks with every forward in the warm-up).</item>
/// <item>By steps (Megatron-LM's forward_backward_pipelining_with_interleaving): a forward directly followed by a
/// backward is one step, every other action a step of its own, and each transfer goes to the first step boundary
/// after its producer and the last one before its consumer, so that between steady steps one group sends this
/// step's forward output and input gradient and receives the next step's forward input and output gradient
/// (send_forward_backward_recv_forward_backward; send_forward_recv_forward in the warm-up,
/// send_backward_recv_backward in the cool-down). Interleaved 1F1B's extra warm-up forwards make every rank's
/// inputs arrive a step ahead, so its ranks advance in lock step and keep the compute-only makespan where the
/// timeline placement would make a rank wait on a neighbour busy in a backward.</item>
/// </list>
/// <para>Within a group sends come first, each side in the order of the producers. With P2P = 0 the tests check,
/// over the whole grid of generated schedules, that the lowered schedule has its compute-only makespan (so bubble)
/// and completes; <see cref="ScheduleSimulator"/> replays it.</para>
/// </summary>
public static class PipelineCommunication
{
    /// <summary>How many slots on each side a transfer that finds no common pause tries first.</summary>
    private const int Reach = 4;

    private const double Slack = 1e-9;

    public static PipelineSchedule Insert(PipelineSchedule compute, StageCosts? placement = null)
    {
        ScheduleValidator.Validate(compute);
        for (int r = 0; r < compute.Ranks; r++)
        {
            foreach (var a in compute.Actions[r].Where(a => a.IsCommunication))
            {
                throw new ArgumentException(
                    $"pipeline schedule '{compute.Name}': rank {r}, action {a}: already has communication; insert it once");
            }
        }
        var costs = placement ?? StageCosts.ZeroBubblePaper;
        costs.Check();
        var timeline = new Plan(compute, costs);
        timeline.PlaceOnTimeline();
        var steps = new Plan(compute, costs);
        var best = steps.PlaceBySteps() && steps.Makespan < timeline.Makespan - Slack ? steps : timeline;
        return compute with { Actions = best.Lower() };
    }

    /// <summary>One cross-rank transfer: produced by action Producer of rank From, consumed by action Consumer of rank To.</summary>
    private sealed class Transfer(int from, int producer, int to, int consumer, PipelineAction send, PipelineAction recv)
    {
        public int From { get; } = from;

        public int Producer { get; } = producer;

        public int To { get; } = to;

        public int Consumer { get; } = consumer;

        public PipelineAction Send { get; } = send;

        public PipelineAction Recv { get; } = recv;

        public int SendSlot { get; set; } = -1;

        public int RecvSlot { get; set; } = -1;

        /// <summary>The latest receive slot that keeps the pair's order possible: the earliest consumer of this and every later transfer of the pair.</summary>
        public int RecvLimit { get; set; }
    }

    private sealed class Plan
    {
        private readonly PipelineSchedule _s;
        private readonly int[] _offset;
        private readonly double[] _duration;
        private readonly List<int>[] _next;
        private readonly List<Transfer> _transfers = [];
        private double[] _start;
        private double _makespan;

        public Plan(PipelineSchedule s, StageCosts costs)
        {
            _s = s;
            _offset = new int[s.Ranks + 1];
            for (int r = 0; r < s.Ranks; r++)
            {
                _offset[r + 1] = _offset[r] + s.Actions[r].Count;
            }
            int n = _offset[^1];
            _duration = new double[n];
            _next = new List<int>[n];
            var where = new Dictionary<(ActionKind, int, int), (int Rank, int Index)>();
            for (int r = 0; r < s.Ranks; r++)
            {
                for (int j = 0; j < s.Actions[r].Count; j++)
                {
                    var a = s.Actions[r][j];
                    _duration[Node(r, j)] = costs.Of(a.Kind);
                    _next[Node(r, j)] = [];
                    if (j > 0)
                    {
                        _next[Node(r, j - 1)].Add(Node(r, j));
                    }
                    where[(a.Kind == ActionKind.BackwardInput ? ActionKind.Backward : a.Kind, a.Stage, a.MicroBatch)] = (r, j);
                }
            }
            int last = s.Stages - 1;
            for (int r = 0; r < s.Ranks; r++)
            {
                for (int j = 0; j < s.Actions[r].Count; j++)
                {
                    var a = s.Actions[r][j];
                    int st = a.Stage, mb = a.MicroBatch;
                    PipelineAction send, recv;
                    (ActionKind, int, int) consumerKey;
                    if (a.Kind == ActionKind.Forward && st < last && s.RankOfStage(st + 1) != r)
                    {
                        (send, recv) = (new(ActionKind.SendActivation, st, mb), new(ActionKind.RecvActivation, st + 1, mb));
                        consumerKey = (ActionKind.Forward, st + 1, mb);
                    }
                    else if (a.Kind is ActionKind.Backward or ActionKind.BackwardInput && st > 0 && s.RankOfStage(st - 1) != r)
                    {
                        (send, recv) = (new(ActionKind.SendGradient, st, mb), new(ActionKind.RecvGradient, st - 1, mb));
                        consumerKey = (ActionKind.Backward, st - 1, mb);
                    }
                    else
                    {
                        continue;
                    }
                    var (to, consumer) = where[consumerKey];
                    _transfers.Add(new(r, j, to, consumer, send, recv));
                    _next[Node(r, j)].Add(Node(to, consumer));
                }
            }
            // Transfers between two ranks pair in the order they are posted (ICommunicator.BatchSendRecv): sends in the
            // order of their producers, and the receives in the same order, so each receive comes no later than the
            // earliest consumer of its own and every later transfer of the pair.
            foreach (var pair in _transfers.GroupBy(t => (t.From, t.To)))
            {
                int limit = int.MaxValue;
                foreach (var t in pair.OrderByDescending(t => t.Producer))
                {
                    limit = Math.Min(limit, t.Consumer);
                    t.RecvLimit = limit;
                }
            }
            (_start, _makespan) = Evaluate(null) ?? throw new InvalidOperationException(
                $"pipeline schedule '{s.Name}' deadlocks: its ranks wait on each other in a ring");
        }

        public double Makespan => _makespan;

        private int Node(int r, int j) => _offset[r] + j;

        /// <summary>
        /// Megatron-LM's placement: a forward directly followed by a backward is one step, any other action a step of
        /// its own; each transfer is sent at the first step boundary after its producer and received at the last one
        /// before its consumer (send_forward_backward_recv_forward_backward between steady steps). False when that
        /// closes a ring of rendezvous (a deadlock).
        /// </summary>
        public bool PlaceBySteps()
        {
            foreach (var t in _transfers)
            {
                var from = _s.Actions[t.From];
                var to = _s.Actions[t.To];
                int x = t.Producer + 1;
                if (from[t.Producer].Kind == ActionKind.Forward && x < from.Count && IsBackward(from[x].Kind))
                {
                    x++;
                }
                int y = t.Consumer;
                if (IsBackward(to[y].Kind) && y > 0 && to[y - 1].Kind == ActionKind.Forward)
                {
                    y--;
                }
                Add(t, x, y);
            }
            if (Evaluate(null) is not { } found)
            {
                return false;
            }
            (_start, _makespan) = found;
            return true;
        }

        private static bool IsBackward(ActionKind kind) => kind is ActionKind.Backward or ActionKind.BackwardInput;

        /// <summary>
        /// Transfers in the order their data is produced, each at a moment both ranks are between actions in the current
        /// timeline when there is one (<see cref="Common"/>), else where it delays the makespan least (<see cref="Best"/>).
        /// </summary>
        public void PlaceOnTimeline()
        {
            var lastSend = new Dictionary<(int, int), int>();
            var lastRecv = new Dictionary<(int, int), int>();
            var order = _transfers.OrderBy(t => End(Node(t.From, t.Producer))).ThenBy(t => t.From).ThenBy(t => t.Producer).ToList();
            foreach (var t in order)
            {
                // A pair's sends and receives stay in the order of its producers.
                int xlo = Math.Max(t.Producer + 1, lastSend.GetValueOrDefault((t.From, t.To)));
                int ylo = lastRecv.GetValueOrDefault((t.From, t.To));
                if (Common(t, xlo, ylo, t.RecvLimit) is { } common)
                {
                    // The timeline already meets the new rendezvous: nothing moves.
                    Add(t, common.X, common.Y);
                }
                else
                {
                    var best = Best(t, xlo, ylo, t.RecvLimit);
                    Add(t, best.X, best.Y);
                    (_start, _makespan) = Evaluate(null)!.Value;
                }
                lastSend[(t.From, t.To)] = t.SendSlot;
                lastRecv[(t.From, t.To)] = t.RecvSlot;
            }
        }

        /// <summary>Edges of a transfer placed before action x of the sender and y of the receiver: the receiver's
        /// action y starts after the sender posts (end of x - 1), the sender's action x after the receiver posts.</summary>
        private IEnumerable<(int From, int To)> Edges(Transfer t, int x, int y)
        {
            yield return (Node(t.From, x - 1), Node(t.To, y));
            if (y > 0 && x < _s.Actions[t.From].Count)
            {
                yield return (Node(t.To, y - 1), Node(t.From, x));
            }
        }

        private void Add(Transfer t, int x, int y)
        {
            foreach (var (u, v) in Edges(t, x, y))
            {
                _next[u].Add(v);
            }
            t.SendSlot = x;
            t.RecvSlot = y;
        }

        private double End(int node) => _start[node] + _duration[node];

        /// <summary>
        /// The earliest moment, at or after the producer's end and not after the consumer's start, when both ranks are
        /// between actions in the current timeline (slots x &gt;= xlo on the sender, ylo &lt;= y &lt;= yhi on the
        /// receiver): placing the transfer there changes no time.
        /// </summary>
        private (int X, int Y)? Common(Transfer t, int xlo, int ylo, int yhi)
        {
            int count = _s.Actions[t.From].Count;
            double produced = End(Node(t.From, t.Producer));
            double deadline = _start[Node(t.To, t.Consumer)];
            int x = xlo, y = ylo;
            while (x <= count && y <= yhi)
            {
                double sendFrom = End(Node(t.From, x - 1));
                double sendTo = x < count ? _start[Node(t.From, x)] : double.PositiveInfinity;
                double recvFrom = y == 0 ? 0 : End(Node(t.To, y - 1));
                double recvTo = _start[Node(t.To, y)];
                double from = Math.Max(Math.Max(sendFrom, recvFrom), produced);
                if (from <= Math.Min(Math.Min(sendTo, recvTo), deadline) + Slack)
                {
                    return (x, y);
                }
                if (sendTo < recvTo)
                {
                    x++;
                }
                else
                {
                    y++;
                }
            }
            return null;
        }

        /// <summary>
        /// When no moment suits both ranks: the slots, near the earliest send and the latest receive first, that keep
        /// the makespan smallest, then the sum of start times (the least delay); never a pair that closes a ring of
        /// rendezvous. Throws when every pair does.
        /// </summary>
        private (int X, int Y) Best(Transfer t, int xlo, int ylo, int yhi)
        {
            int count = _s.Actions[t.From].Count;
            foreach (int reach in new[] { Reach, int.MaxValue })
            {
                (int, int)? best = null;
                double bestMakespan = double.PositiveInfinity, bestSum = double.PositiveInfinity;
                for (int x = xlo; x <= count && x - xlo < reach; x++)
                {
                    for (int y = yhi; y >= ylo && yhi - y < reach; y--)
                    {
                        if (Evaluate([.. Edges(t, x, y)]) is not { } r)
                        {
                            continue;
                        }
                        double sum = r.Start.Sum();
                        if (r.Makespan < bestMakespan - Slack || (r.Makespan < bestMakespan + Slack && sum < bestSum - Slack))
                        {
                            (best, bestMakespan, bestSum) = ((x, y), r.Makespan, sum);
                        }
                    }
                }
                if (best is { } found)
                {
                    return found;
                }
            }
            throw new InvalidOperationException(
                $"pipeline schedule '{_s.Name}': {t.Send} from rank {t.From} to rank {t.To}: every placement deadlocks");
        }

        /// <summary>Earliest start of every action under the edges (and the extra ones); null when they close a cycle.</summary>
        private (double[] Start, double Makespan)? Evaluate(List<(int From, int To)>? extra)
        {
            int n = _duration.Length;
            var indegree = new int[n];
            for (int u = 0; u < n; u++)
            {
                foreach (int v in _next[u])
                {
                    indegree[v]++;
                }
            }
            if (extra is not null)
            {
                foreach (var (_, v) in extra)
                {
                    indegree[v]++;
                }
            }
            var start = new double[n];
            var queue = new Queue<int>();
            for (int u = 0; u < n; u++)
            {
                if (indegree[u] == 0)
                {
                    queue.Enqueue(u);
                }
            }
            int done = 0;
            double makespan = 0;
            while (queue.Count > 0)
            {
                int u = queue.Dequeue();
                done++;
                double end = start[u] + _duration[u];
                makespan = Math.Max(makespan, end);
                void Relax(int v)
                {
                    start[v] = Math.Max(start[v], end);
                    if (--indegree[v] == 0)
                    {
                        queue.Enqueue(v);
                    }
                }
                foreach (int v in _next[u])
                {
                    Relax(v);
                }
                if (extra is not null)
                {
                    foreach (var (a, v) in extra)
                    {
                        if (a == u)
                        {
                            Relax(v);
                        }
                    }
                }
            }
            return done == n ? (start, makespan) : null;
        }

        public IReadOnlyList<PipelineAction>[] Lower()
        {
            var sends = new List<PipelineAction>[_offset[^1] + _s.Ranks];
            var recvs = new List<PipelineAction>[sends.Length];
            foreach (var t in _transfers.OrderBy(t => t.From).ThenBy(t => t.Producer))
            {
                (sends[_offset[t.From] + t.From + t.SendSlot] ??= []).Add(t.Send);
                (recvs[_offset[t.To] + t.To + t.RecvSlot] ??= []).Add(t.Recv);
            }
            var lowered = new IReadOnlyList<PipelineAction>[_s.Ranks];
            for (int r = 0; r < _s.Ranks; r++)
            {
                var list = new List<PipelineAction>(_s.Actions[r].Count * 3);
                for (int j = 0; j <= _s.Actions[r].Count; j++)
                {
                    list.AddRange(sends[_offset[r] + r + j] ?? []);
                    list.AddRange(recvs[_offset[r] + r + j] ?? []);
                    if (j < _s.Actions[r].Count)
                    {
                        list.Add(_s.Actions[r][j]);
                    }
                }
                lowered[r] = list;
            }
            return lowered;
        }
    }
}
