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
/// every transfer is given a time: the end of its producer when the compute-only schedule is simulated with
/// <c>placement</c> costs (default F = I = W = 1, B = 2, free transfers). The send goes right after its producer;
/// the receive goes before the first action of its rank that starts at or after that time, i.e. it is posted as
/// soon as the data exists, which is Megatron's "receive the next input with this step's send". Within a group
/// sends come first. <see cref="ScheduleSimulator"/> proves a lowered schedule completes; the tests do so over the
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
                if (a.Kind == ActionKind.Forward && s < last && compute.RankOfStage(s + 1) != r)
                {
                    sends[r][j + 1].Add(new(ActionKind.SendActivation, s, mb));
                    var (to, consumer) = where[(ActionKind.Forward, s + 1, mb)];
                    recvs[to][FirstStartingAt(timed[to], produced, consumer)].Add(new(ActionKind.RecvActivation, s + 1, mb));
                }
                else if (a.Kind is ActionKind.Backward or ActionKind.BackwardInput && s > 0 && compute.RankOfStage(s - 1) != r)
                {
                    sends[r][j + 1].Add(new(ActionKind.SendGradient, s, mb));
                    var (to, consumer) = where[(ActionKind.Backward, s - 1, mb)];
                    recvs[to][FirstStartingAt(timed[to], produced, consumer)].Add(new(ActionKind.RecvGradient, s - 1, mb));
                }
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

    /// <summary>Index of the first action of a rank starting at or after <paramref name="time"/>, at most the consumer's.</summary>
    private static int FirstStartingAt(IReadOnlyList<TimedAction> timeline, double time, int consumer)
    {
        for (int j = 0; j < consumer; j++)
        {
            if (timeline[j].Start >= time)
            {
                return j;
            }
        }
        return consumer;
    }
}
