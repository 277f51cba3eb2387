namespace ModelParallel.Training.Pipeline;

/// <summary>
/// Checks that a schedule can be run, before anything runs it; throws a one-line <see cref="ArgumentException"/>
/// naming the rank, the action and the rule. A schedule with no communication action is compute-only; one with
/// any is full (lowered by <see cref="PipelineCommunication.Insert"/> or written by hand).
/// <para>Both kinds: every action's stage in [0, p v) and micro-batch in [0, m); every action on the rank of its
/// stage (stage mod p); each (stage, micro-batch) has exactly one F and either exactly one B or one I and one W
/// (never both); B or I after its F, W after its I, on that rank; F(s) after F(s - 1) and the backward of s after
/// the backward of s + 1 when both stages live on the same rank.</para>
/// <para>Full schedules only: when stage s - 1 lives on another rank, F(s, mb) needs RECV_F(s, mb) earlier on its
/// rank, and when s + 1 does, the backward of s needs RECV_B(s, mb); a communication action must have a peer on
/// another rank (SEND_F(s) with RECV_F(s + 1), SEND_B(s) with RECV_B(s - 1)), one to one; SEND_F(s, mb) comes after
/// F(s, mb) and SEND_B(s, mb) after the backward of (s, mb). Compute-only schedules leave the cross-rank
/// dependencies to <see cref="ScheduleSimulator"/>, which makes each action wait for its producer on the other rank
/// (and so detects an order that can never complete); deadlock freedom of full schedules is the simulator's too.</para>
/// </summary>
public static class ScheduleValidator
{
    private const int Kinds = 8;

    public static void Validate(PipelineSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        string name = schedule.Name;
        int p = schedule.Ranks, v = schedule.VirtualStages, m = schedule.MicroBatches;
        if (p < 1 || v < 1 || m < 1)
        {
            throw new ArgumentException(
                $"pipeline schedule '{name}': ranks {p}, virtual stages {v}, micro-batches {m}: each must be at least 1");
        }
        if (schedule.Actions.Count != p)
        {
            throw new ArgumentException(
                $"pipeline schedule '{name}': {schedule.Actions.Count} action lists for {p} ranks (one per rank)");
        }
        int stages = schedule.Stages;

        // Position of each action on its rank, per kind; -1 where absent. Duplicates are refused as they are met.
        var position = new int[Kinds, stages, m];
        for (int k = 0; k < Kinds; k++)
        {
            for (int s = 0; s < stages; s++)
            {
                for (int mb = 0; mb < m; mb++)
                {
                    position[k, s, mb] = -1;
                }
            }
        }
        bool full = false;
        for (int r = 0; r < p; r++)
        {
            var actions = schedule.Actions[r];
            for (int i = 0; i < actions.Count; i++)
            {
                var a = actions[i];
                if (a.Kind is < ActionKind.Forward or > ActionKind.RecvGradient)
                {
                    throw Fail(schedule, r, i, a, "unknown action kind");
                }
                if (a.Stage < 0 || a.Stage >= stages)
                {
                    throw Fail(schedule, r, i, a, $"stage {a.Stage} out of range [0, {stages})");
                }
                if (a.MicroBatch < 0 || a.MicroBatch >= m)
                {
                    throw Fail(schedule, r, i, a, $"micro-batch {a.MicroBatch} out of range [0, {m})");
                }
                if (schedule.RankOfStage(a.Stage) != r)
                {
                    throw Fail(schedule, r, i, a,
                        $"stage {a.Stage} runs on rank {schedule.RankOfStage(a.Stage)} (stage mod {p}), not rank {r}");
                }
                ref int at = ref position[(int)a.Kind, a.Stage, a.MicroBatch];
                if (at >= 0)
                {
                    throw Fail(schedule, r, i, a, $"appears twice (first at position {at}); each action runs once");
                }
                at = i;
                full |= a.IsCommunication;
            }
        }

        for (int s = 0; s < stages; s++)
        {
            int r = schedule.RankOfStage(s);
            for (int mb = 0; mb < m; mb++)
            {
                int f = position[(int)ActionKind.Forward, s, mb];
                int b = position[(int)ActionKind.Backward, s, mb];
                int bi = position[(int)ActionKind.BackwardInput, s, mb];
                int bw = position[(int)ActionKind.BackwardWeight, s, mb];
                if (f < 0)
                {
                    throw Fail(schedule, r, new(ActionKind.Forward, s, mb), "missing: each stage and micro-batch runs one F");
                }
                if (b >= 0 && (bi >= 0 || bw >= 0))
                {
                    throw Fail(schedule, r, b, new(ActionKind.Backward, s, mb),
                        "a B and a split backward (I/W) of the same stage and micro-batch: one or the other");
                }
                if (b < 0 && bi < 0 && bw < 0)
                {
                    throw Fail(schedule, r, new(ActionKind.Backward, s, mb),
                        "missing: each stage and micro-batch runs one B or one I and one W");
                }
                if (bi >= 0 && bw < 0)
                {
                    throw Fail(schedule, r, new(ActionKind.BackwardWeight, s, mb), "missing: an I needs its W");
                }
                if (bw >= 0 && bi < 0)
                {
                    throw Fail(schedule, r, new(ActionKind.BackwardInput, s, mb), "missing: a W needs its I");
                }
            }
        }

        for (int r = 0; r < p; r++)
        {
            var actions = schedule.Actions[r];
            for (int i = 0; i < actions.Count; i++)
            {
                CheckOrder(schedule, position, full, r, i, actions[i]);
            }
        }
    }

    private static void CheckOrder(PipelineSchedule schedule, int[,,] position, bool full, int r, int i, PipelineAction a)
    {
        int s = a.Stage, mb = a.MicroBatch, last = schedule.Stages - 1;
        int At(ActionKind kind, int stage) => position[(int)kind, stage, mb];
        int BackwardAt(int stage) => Math.Max(At(ActionKind.Backward, stage), At(ActionKind.BackwardInput, stage));
        bool PrevOnOtherRank() => s > 0 && schedule.RankOfStage(s - 1) != r;
        bool NextOnOtherRank() => s < last && schedule.RankOfStage(s + 1) != r;
        switch (a.Kind)
        {
            case ActionKind.Forward:
                if (s > 0 && !PrevOnOtherRank() && At(ActionKind.Forward, s - 1) > i)
                {
                    throw Fail(schedule, r, i, a, $"runs before F(s{s - 1},mb{mb}) on the same rank, whose output it needs");
                }
                if (full && PrevOnOtherRank() && !Before(At(ActionKind.RecvActivation, s), i))
                {
                    throw Fail(schedule, r, i, a,
                        $"no RECV_F(s{s},mb{mb}) before it: its input comes from rank {schedule.RankOfStage(s - 1)}");
                }
                break;
            case ActionKind.Backward:
            case ActionKind.BackwardInput:
                if (At(ActionKind.Forward, s) > i)
                {
                    throw Fail(schedule, r, i, a, "backward before its forward");
                }
                if (s < last && !NextOnOtherRank() && BackwardAt(s + 1) > i)
                {
                    throw Fail(schedule, r, i, a,
                        $"runs before the backward of stage {s + 1} on the same rank, whose input gradient it needs");
                }
                if (full && NextOnOtherRank() && !Before(At(ActionKind.RecvGradient, s), i))
                {
                    throw Fail(schedule, r, i, a,
                        $"no RECV_B(s{s},mb{mb}) before it: its output gradient comes from rank {schedule.RankOfStage(s + 1)}");
                }
                break;
            case ActionKind.BackwardWeight:
                if (At(ActionKind.BackwardInput, s) > i)
                {
                    throw Fail(schedule, r, i, a, "W before its I");
                }
                break;
            case ActionKind.SendActivation:
                if (!NextOnOtherRank())
                {
                    throw Fail(schedule, r, i, a, s == last
                        ? "the last stage sends no activation"
                        : $"stage {s + 1} is on the same rank: nothing to send");
                }
                if (At(ActionKind.Forward, s) > i)
                {
                    throw Fail(schedule, r, i, a, "sends before the F that produces the activation");
                }
                if (At(ActionKind.RecvActivation, s + 1) < 0)
                {
                    throw Fail(schedule, r, i, a,
                        $"no matching RECV_F(s{s + 1},mb{mb}) on rank {schedule.RankOfStage(s + 1)}");
                }
                break;
            case ActionKind.RecvActivation:
                if (!PrevOnOtherRank())
                {
                    throw Fail(schedule, r, i, a, s == 0
                        ? "the first stage receives no activation"
                        : $"stage {s - 1} is on the same rank: nothing to receive");
                }
                if (At(ActionKind.SendActivation, s - 1) < 0)
                {
                    throw Fail(schedule, r, i, a,
                        $"no matching SEND_F(s{s - 1},mb{mb}) on rank {schedule.RankOfStage(s - 1)}");
                }
                break;
            case ActionKind.SendGradient:
                if (!PrevOnOtherRank())
                {
                    throw Fail(schedule, r, i, a, s == 0
                        ? "the first stage sends no input gradient"
                        : $"stage {s - 1} is on the same rank: nothing to send");
                }
                if (BackwardAt(s) > i)
                {
                    throw Fail(schedule, r, i, a, "sends before the backward that produces the gradient");
                }
                if (At(ActionKind.RecvGradient, s - 1) < 0)
                {
                    throw Fail(schedule, r, i, a,
                        $"no matching RECV_B(s{s - 1},mb{mb}) on rank {schedule.RankOfStage(s - 1)}");
                }
                break;
            case ActionKind.RecvGradient:
                if (!NextOnOtherRank())
                {
                    throw Fail(schedule, r, i, a, s == last
                        ? "the last stage receives no output gradient"
                        : $"stage {s + 1} is on the same rank: nothing to receive");
                }
                if (At(ActionKind.SendGradient, s + 1) < 0)
                {
                    throw Fail(schedule, r, i, a,
                        $"no matching SEND_B(s{s + 1},mb{mb}) on rank {schedule.RankOfStage(s + 1)}");
                }
                break;
        }
    }

    private static bool Before(int position, int i) => position >= 0 && position < i;

    private static ArgumentException Fail(PipelineSchedule s, int rank, int position, PipelineAction a, string rule) =>
        new($"pipeline schedule '{s.Name}': rank {rank}, action {a} at position {position}: {rule}");

    private static ArgumentException Fail(PipelineSchedule s, int rank, PipelineAction a, string rule) =>
        new($"pipeline schedule '{s.Name}': rank {rank}, action {a}: {rule}");
}
