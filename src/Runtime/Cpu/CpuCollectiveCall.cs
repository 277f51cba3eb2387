namespace ModelParallel.Runtime.Cpu;

/// <summary>What one rank posted for a collective: its name, element type, per-rank count, reduction,
/// root and tensors. Every rank of the group must post an equal description.</summary>
internal sealed record CpuCollectiveCall(string Name, DType DType, long Count, ReduceOp? Op, int Root, CpuTensor? Send, CpuTensor? Recv)
{
    /// <summary>A description of the call for mismatch messages.</summary>
    public string Describe() =>
        $"{Name}({Count} {DType} elements{(Op is { } op ? $", {op}" : "")}{(Root >= 0 ? $", root {Root}" : "")})";

    /// <summary>Null when every rank posted the same call; else a message naming the first difference.</summary>
    public static string? FindMismatch(CpuCollectiveCall?[] calls)
    {
        var first = calls[0]!;
        for (int q = 1; q < calls.Length; q++)
        {
            var call = calls[q]!;
            if (call.Name != first.Name || call.DType != first.DType || call.Count != first.Count || call.Op != first.Op
                || call.Root != first.Root)
            {
                return $"collective mismatch: rank 0 calls {first.Describe()} but rank {q} calls {call.Describe()}";
            }
        }
        return null;
    }
}
