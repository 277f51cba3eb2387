using System.Text;

namespace ModelParallel.Planner;

/// <summary>Readable text of a search: a table of the best plans, the math of the best, and why the runners-up lose.</summary>
public static class PlanText
{
    public static string Describe(PlannerInputs inputs)
    {
        var (m, c, t) = inputs;
        var sb = new StringBuilder();
        sb.AppendLine($"{m.Name}: {Units.Count(Parameters.Total(m))} parameters, {m.Layers} layers, hidden {m.Hidden}, "
            + $"{m.Heads} heads ({m.KvHeads} kv), ffn {m.Ffn} {Lower(m.Activation)}, vocab {m.Vocab}, sequence {m.SequenceLength}");
        sb.AppendLine($"{c.Name}: {c.Nodes} node{(c.Nodes == 1 ? "" : "s")} x {c.GpusPerNode} GPUs = {c.TotalGpus}, {Units.Bytes(c.GpuMemoryBytes)} each "
            + $"({Units.Bytes(MemoryModel.Usable(c, t))} usable), {Units.FlopRate(c.PeakFlops)} peak, "
            + $"{Units.Bandwidth(c.IntraNodeBandwidth)} NVLink, {Units.Bandwidth(c.InterNodeBandwidth)} network per GPU");
        sb.AppendLine($"global batch {t.GlobalBatch} x {m.SequenceLength} tokens; {Lower(t.Precision)}{(t.Fp32Gradients ? " with fp32 gradients" : "")}, {Lower(t.Optimizer)} "
            + $"({ModelStateMemory.BytesPerParameter(1, t with { ZeroStage = 0 })} B per parameter), ZeRO {t.ZeroStage}, "
            + $"sequence parallel {(t.SequenceParallel ? "on" : "off")}, recompute {Lower(t.Recompute)}, {Lower(t.Attention)} attention; "
            + $"compute efficiency {Units.Number(t.ComputeEfficiency)}, communication efficiency {Units.Number(t.CommunicationEfficiency)}");
        return sb.ToString();
    }

    /// <summary>The inputs, a table of the best <paramref name="top"/> plans, the math of the best and why the others lose.</summary>
    public static string Format(SearchResult result, int top)
    {
        var sb = new StringBuilder(Describe(result.Inputs));
        sb.AppendLine();
        if (result.Best is not { } best)
        {
            sb.AppendLine(result.WhyNothingFits());
            return sb.ToString();
        }
        var shown = result.Leaders(top);
        sb.AppendLine($"{result.Evaluated} valid layouts, {result.Plans.Count} fit in memory; the best {shown.Count}, "
            + "at most one per (TP, PP, DP) unless fewer choices fit:");
        sb.AppendLine();
        sb.Append(Table(shown));
        sb.AppendLine();
        sb.Append(Math(result.Inputs, best, "Plan 1"));
        if (shown.Count > 1)
        {
            sb.AppendLine();
            sb.AppendLine("Why the runners-up lose (their step minus plan 1's, largest differences first):");
            for (var i = 1; i < shown.Count; i++)
            {
                sb.AppendLine($"  {i + 1}. {shown[i].Layout}: {PlanComparison.Explain(best, shown[i])}");
            }
        }
        return sb.ToString();
    }

    public static string Table(IReadOnlyList<Plan> plans)
    {
        string[] header = ["#", "TP", "PP", "DP", "mb", "v", "m", "memory", "bubble%", "compute", "TP comm", "PP comm", "bubble", "DP exp.", "step", "MFU", "tokens/s"];
        var rows = new List<string[]> { header };
        rows.AddRange(plans.Select((p, i) => (string[])
        [
            $"{i + 1}", $"{p.Layout.Tp}", $"{p.Layout.Pp}", $"{p.Layout.Dp}", $"{p.Layout.MicroBatch}", $"{p.Layout.VirtualStages}",
            $"{p.Microbatches}", Units.Bytes(p.PeakBytes), Units.Percent(p.BubbleFraction),
            .. p.Step.Parts.Select(part => Units.Time(part.Value)),
            Units.Time(p.Step.Seconds), Units.Percent(p.Mfu), Units.Count(System.Math.Round(p.TokensPerSecond)),
        ]));
        var widths = Enumerable.Range(0, header.Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var row in rows)
        {
            sb.AppendLine(string.Join("  ", row.Select((cell, c) => cell.PadLeft(widths[c]))).TrimEnd());
        }
        return sb.ToString();
    }

    /// <summary>Every number of one plan with the formula behind it.</summary>
    public static string Math(PlannerInputs inputs, Plan plan, string title)
    {
        var (m, c, t) = inputs;
        var l = plan.Layout;
        var sb = new StringBuilder();
        sb.AppendLine($"{title}: {l}, {plan.Microbatches} microbatches per step (global batch {t.GlobalBatch} / (DP {l.Dp} x micro batch {l.MicroBatch}))");
        var fullest = plan.Fullest;
        sb.AppendLine($"Memory per GPU on stage {fullest.Stage}, the fullest of stages {string.Join(", ", plan.Stages.Select(s => s.Stage))} "
            + $"({fullest.Layers} layers, {Units.Count(fullest.Parameters)} parameters per GPU):");
        AppendTerms(sb, fullest.Terms, "  ", "total");
        AppendLine(sb, "  ", "total", fullest.Terms.Max(t => t.Name.Length), Units.Bytes(fullest.TotalBytes), $"of {Units.Bytes(plan.UsableBytes)} usable");
        sb.AppendLine($"  activations of one layer and microbatch = s b h x {Units.Number(fullest.LayerActivationBytes / ((double)m.SequenceLength * l.MicroBatch * m.Hidden), 2)} B "
            + $"(s={m.SequenceLength} b={l.MicroBatch} h={m.Hidden} a={m.Heads} kv={m.KvWidth} f={m.Ffn} V={m.Vocab} t={l.Tp}):");
        AppendTerms(sb, fullest.LayerActivations, "    ");
        sb.AppendLine($"Time of one microbatch on stage {plan.SlowestStage}, the slowest:");
        AppendTerms(sb, [plan.ComputePerMicrobatch, plan.TensorParallelPerMicrobatch, plan.PipelinePerMicrobatch], "  ");
        if (plan.DataParallel.Collectives.Count > 0)
        {
            sb.AppendLine("Data-parallel traffic of one step:");
            AppendTerms(sb, plan.DataParallel.Collectives, "  ");
        }
        sb.AppendLine($"Pipeline bubble: (p-1)/(v m) = {l.Pp - 1}/({l.VirtualStages} x {plan.Microbatches}) = {Units.Percent(plan.BubbleFraction)} of the ideal time.");
        sb.AppendLine("Step:");
        string[] totals = ["step", "MFU", "tokens/s"];
        var width = plan.Step.Parts.Select(p => p.Name.Length).Concat(totals.Select(n => n.Length)).Max();
        AppendTerms(sb, plan.Step.Parts, "  ", totals);
        AppendLine(sb, "  ", "step", width, Units.Time(plan.Step.Seconds), "sum of the parts above");
        AppendLine(sb, "  ", "MFU", width, Units.Percent(plan.Mfu),
            $"{Units.Count(t.GlobalBatch * (double)m.SequenceLength)} tokens x {Units.Count(ComputeModel.ModelFlopsPerToken(m))} FLOP "
            + $"(6 x ({m.Layers} x {Units.Count(Parameters.LayerMatmul(m))} + {m.Vocab} x {m.Hidden}) + 12 x {m.Layers} x {m.SequenceLength} x {m.Hidden}) "
            + $"/ ({Units.Time(plan.Step.Seconds)} x {c.TotalGpus} GPUs x {Units.FlopRate(c.PeakFlops)})");
        AppendLine(sb, "  ", "tokens/s", width, Units.Count(System.Math.Round(plan.TokensPerSecond)),
            $"{Units.Count(t.GlobalBatch * (double)m.SequenceLength)} tokens / {Units.Time(plan.Step.Seconds)}");
        return sb.ToString();
    }

    /// <summary>The ZeRO table: each stage's total per GPU, then its three parts with their formulas.</summary>
    public static string Format(ZeroTable table)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"Model states per GPU for {Units.Count(table.Parameters)} parameters, DP {table.Dp}, {Lower(table.Precision)} {Lower(table.Optimizer)}{(table.Fp32Gradients ? " with fp32 gradients" : "")}:");
        foreach (var stage in table.Stages)
        {
            sb.AppendLine($"ZeRO stage {stage.Stage}: ({stage.BytesPerParameter}) B x {Units.Count(table.Parameters)} = {Units.Bytes(stage.TotalBytes)} per GPU");
            AppendTerms(sb, stage.Terms, "  ");
        }
        return sb.ToString();
    }

    private static string Lower<T>(T value) where T : struct, Enum => value.ToString().ToLowerInvariant();

    /// <summary>One line per term, names padded to the longest of the block: "name  value  formula".</summary>
    private static void AppendTerms(StringBuilder sb, IReadOnlyList<Term> terms, string prefix, params string[] extraNames)
    {
        var width = terms.Select(t => t.Name.Length).Concat(extraNames.Select(n => n.Length)).DefaultIfEmpty(0).Max();
        foreach (var term in terms)
        {
            sb.AppendLine($"{prefix}{term.Name.PadRight(width)}  {term.FormattedValue,10}  {term.Formula}");
        }
    }

    private static void AppendLine(StringBuilder sb, string prefix, string name, int width, string value, string text) =>
        sb.AppendLine($"{prefix}{name.PadRight(width)}  {value,10}  {text}");
}
