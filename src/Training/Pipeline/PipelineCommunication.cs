namespace ModelParallel.Training.Pipeline;

/// <summary>
/// Lowers a compute-only schedule to one with point-to-point communication (torch.distributed.pipelining's
/// _add_send_recv). Wherever neighbouring stages live on different ranks (always when p &gt; 1; never when p = 1):
/// F(s, mb) is followed by SEND_F(s, mb) and consumed by F(s + 1, mb) after RECV_F(s + 1, mb); the backward (B or I)
/// of s is followed by SEND_B(s, mb), and the backward of s - 1 comes after RECV_B(s - 1, mb). W moves nothing.
/// <para>Execution contract: a run of consecutive communication actions on a rank is one group, posted together
/// and completing together once every peer has posted its side (ncclGroupStart/End, torch's batch_isend_irecv,
/// with blocking completion). Placing each receive right before its consumer is not enough for that contract:
/// in interleaved 1F1B every rank can sit in a send whose receiver is itself sending (a ring of rendezvous). So
/// the compute-only schedule is first simulated with <c>placement</c> costs (default F = I = W = 1, B = 2, free
/// transfers), and each transfer goes where both ranks are between actions at the same moment, at or after the
/// producer's end and not after the consumer's start: neither side waits, and with those costs the lowered
/// schedule keeps the compute-only timeline (GPipe, 1F1B and ZB-H1 over the whole test grid). When there is no such
/// moment (interleaved 1F1B, whose ranks rarely pause) the send goes right after its producer and the receive before
/// the first action of its rank starting at or after the producer's end; the rendezvous then stalls a rank now and
/// then, so its bubble can exceed the compute-only one. Within a group sends come first.
/// <see cref="ScheduleSimulator"/> proves a lowered schedule completes; the tests do so over the
/// whole grid of generated schedules.</para>
/// </summary>
public static class PipelineCommunication
{
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
        var timed = ScheduleSimulator.Simulate(compute, placement ?? StageCosts.ZeroBubblePaper).Timelines;

        // slots[r][j]: the communication posted before compute action j of rank r (j = count: after the last).
        var sends = Slots(compute);
        var recvs = Slots(compute);
        var where = new Dictionary<(ActionKind, int, int), (int Rank, int Index)>();
        for (int r = 0; r < compute.Ranks; r++)
        {
            for (int j = 0; j < compute.Actions[r].Count; j++)
            {
                var a = compute.Actions[r][j];
                where[(a.Kind == ActionKind.BackwardInput ? ActionKind.Backward : a.Kind, a.Stage, a.MicroBatch)] = (r, j);
            }
        }
        int last = compute.Stages - 1;
        for (int r = 0; r < compute.Ranks; r++)
        {
            for (int j = 0; j < compute.Actions[r].Count; j++)
            {
                var a = compute.Actions[r][j];
                double produced = timed[r][j].End;
                int s = a.Stage, mb = a.MicroBatch;
                PipelineAction send, recv;
                (ActionKind, int, int) consumerKey;
                if (a.Kind == ActionKind.Forward && s < last && compute.RankOfStage(s + 1) != r)
                {
                    (send, recv) = (new(ActionKind.SendActivation, s, mb), new(ActionKind.RecvActivation, s + 1, mb));
                    consumerKey = (ActionKind.Forward, s + 1, mb);
                }
                else if (a.Kind is ActionKind.Backward or ActionKind.BackwardInput && s > 0 && compute.RankOfStage(s - 1) != r)
                {
                    (send, recv) = (new(ActionKind.SendGradient, s, mb), new(ActionKind.RecvGradient, s - 1, mb));
                    consumerKey = (ActionKind.Backward, s - 1, mb);
                }
                else
                {
                    continue;
                }
                var (to, consumer) = where[consumerKey];
                var (sendSlot, recvSlot) = Place(timed[r], j, timed[to], consumer);
                sends[r][sendSlot].Add(send);
                recvs[to][recvSlot].Add(recv);
            }
        }

        var lowered = new IReadOnlyList<PipelineAction>[compute.Ranks];
        for (int r = 0; r < compute.Ranks; r++)
        {
            var list = new List<PipelineAction>(compute.Actions[r].Count * 3);
            for (int j = 0; j <= compute.Actions[r].Count; j++)
            {
                list.AddRange(sends[r][j]);
                list.AddRange(recvs[r][j]);
                if (j < compute.Actions[r].Count)
                {
                    list.Add(compute.Actions[r][j]);
                }
            }
            lowered[r] = list;
        }
        return compute with { Actions = lowered };
    }

    private static List<PipelineAction>[][] Slots(PipelineSchedule s) =>
        [.. s.Actions.Select(a => Enumerable.Range(0, a.Count + 1).Select(_ => new List<PipelineAction>()).ToArray())];

    /// <summary>
    /// The slots (index of the action a communication goes before) of one transfer: the earliest moment at or after
    /// the producer's end, and not after the consumer's start, when both ranks are between actions in the simulated
    /// compute-only timeline; then neither waits for the other. When there is none, the send goes right after the
    /// producer and the receive before the first action of its rank starting at or after the producer's end.
    /// </summary>
    private static (int Send, int Recv) Place(IReadOnlyList<TimedAction> sender, int producer,
        IReadOnlyList<TimedAction> receiver, int consumer)
    {
        const double Slack = 1e-9;
        double produced = sender[producer].End;
        double deadline = receiver[consumer].Start;
        int x = producer + 1, y = 0;
        while (x <= sender.Count && y <= consumer)
        {
            // Between actions x - 1 and x on the sender, y - 1 and y on the receiver.
            double sendFrom = sender[x - 1].End, sendTo = x < sender.Count ? sender[x].Start : double.PositiveInfinity;
            double recvFrom = y == 0 ? 0 : receiver[y - 1].End, recvTo = receiver[y].Start;
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
        int fallback = 0;
        while (fallback < consumer && receiver[fallback].Start < produced)
        {
            fallback++;
        }
        return (producer + 1, fallback);
    }
}
