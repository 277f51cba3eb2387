namespace ModelParallel.Runtime.Cuda;

/// <summary>What a cuBLASLt plan (descriptors and heuristic choice) depends on: the problem, its types, the
/// epilogue and the alignment of every pointer (which limits the kernels the heuristic may choose).</summary>
internal readonly record struct GemmPlanKey(
    int M,
    int N,
    int K,
    bool TransA,
    bool TransB,
    DType InputType,
    DType OutputType,
    uint Epilogue,
    DType? BiasType,
    bool HasAux,
    bool Tf32,
    int AlignA,
    int AlignB,
    int AlignC,
    int AlignBias,
    int AlignAux);
