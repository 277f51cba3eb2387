using System.Globalization;
using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>
/// Row-major GEMMs of <see cref="IKernels.Gemm"/> on cuBLASLt, which is column-major: a row-major [r, c] matrix is
/// the column-major [c, r] one, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T, i.e. cuBLASLt's A is our B
/// and its B our A, with m and n swapped. Inputs BFloat16 (or Half) with a BFloat16 or Float32 output, or all Float32;
/// FP32 compute (TF32 for all-Float32 problems when <see cref="AllowTf32"/> is set). Epilogues map as:
/// Bias -> BIAS, BiasGelu -> GELU_AUX_BIAS (GELU_BIAS without aux), Gelu -> GELU_AUX (GELU), DGelu -> DGELU_BGRAD
/// (DGELU without biasGrad), BiasGradA -> BGRADB (cuBLASLt's B being our A); the aux matrix has leading dimension n.
/// Descriptors, layouts and the heuristic's choice are made once per <see cref="GemmPlanKey"/> and cached; one
/// 32 MiB workspace serves the backend's stream. Not thread-safe (one per backend).
/// </summary>
public sealed unsafe class CublasLtGemm : IDisposable
{
    public const long WorkspaceBytes = 32L << 20;

    /// <summary>How many heuristic candidates a new shape is timed with.</summary>
    private const int TuningCandidates = 32;

    /// <summary>Shapes with fewer multiply-adds (m*n*k) keep the heuristic's first choice: timing gains them nothing.</summary>
    private const long TuningMinimumProduct = 1L << 21;

    /// <summary>Rounds in which every candidate is timed once; the median of its rounds ranks it.</summary>
    private const int TuningRounds = 5;

    /// <summary>The length a timed block of back-to-back runs aims at: long enough that a large GEMM is timed at the
    /// clocks its own power draw allows, and that launch gaps and event overhead do not rank small problems.</summary>
    private const double TuningBlockMs = 10.0;

    /// <summary>The most runs in one timed block.</summary>
    private const int TuningMaxRuns = 16;

    private readonly CudaBackend _backend;
    private readonly CublasLtHandle _handle;
    private readonly MatmulPreferenceHandle _preference;
    private readonly DeviceBlockHandle _workspace;
    private readonly Dictionary<GemmPlanKey, GemmPlan> _plans = [];

    internal CublasLtGemm(CudaBackend backend)
    {
        _backend = backend;
        int device = backend.Device;
        _handle = new CublasLtHandle(device);
        _preference = new MatmulPreferenceHandle(device);
        try
        {
            nint handle, preference;
            Status.CheckCublas(CublasLt.Create(&handle), "cublasLtCreate");
            _handle.Adopt(handle);
            Status.CheckCublas(CublasLt.MatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate");
            _preference.Adopt(preference);
            ulong workspaceBytes = WorkspaceBytes;
            Status.CheckCublas(CublasLt.MatmulPreferenceSetAttribute(preference, CublasLt.PrefMaxWorkspaceBytes,
                &workspaceBytes, sizeof(ulong)), "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
            _workspace = backend.Allocator.Allocate(WorkspaceBytes);
        }
        catch
        {
            _preference.Dispose();
            _handle.Dispose();
            throw;
        }
    }

    /// <summary>Lets all-Float32 GEMMs use TF32 tensor cores (about 1e-3 relative error instead of 1e-6).</summary>
    public bool AllowTf32 { get; set; }

    /// <summary>Number of cached plans.</summary>
    public int PlanCount => _plans.Count;

    /// <summary>Number of cached plans whose fused epilogue cuBLASLt does not offer for that problem (for example an
    /// aux leading dimension not a multiple of 8), so that the epilogue runs as separate kernels.</summary>
    public int UnfusedPlanCount => _plans.Values.Count(p => !p.HasAlgorithm);

    /// <summary>
    /// One line per cached plan: the problem and the algorithm it runs (cuBLASLt's algorithm, tile and stages ids, see
    /// cublasLtMatmulTile_t and cublasLtMatmulStages_t), or that its epilogue runs unfused.
    /// </summary>
    public IReadOnlyList<string> DescribePlans() =>
        [.. _plans.Select(p => $"{Describe(p.Key)}: " + (p.Value.HasAlgorithm
            ? $"algo {AlgoConfig(p.Value.Algorithm, CublasLt.AlgoConfigId)} tile {AlgoConfig(p.Value.Algorithm, CublasLt.AlgoConfigTileId)} " +
              $"stages {AlgoConfig(p.Value.Algorithm, CublasLt.AlgoConfigStagesId)}, of {p.Value.Candidates.Length} candidates" +
              (p.Value.TunedMilliseconds.Length > 0
                  ? ", timed (median ms of each accepted candidate, the heuristic's order: " +
                    string.Join(" ", p.Value.TunedMilliseconds.Select(ms => ms.ToString("F4", CultureInfo.InvariantCulture))) + ")"
                  : ", the heuristic's first")
            : "epilogue unfused"))];

    private static uint AlgoConfig(CublasLtMatmulAlgo algo, int attribute)
    {
        uint value = 0;
        nuint written = 0;
        Status.CheckCublas(CublasLt.MatmulAlgoConfigGetAttribute(&algo, attribute, &value, sizeof(uint), &written),
            $"cublasLtMatmulAlgoConfigGetAttribute({attribute})");
        return value;
    }

    /// <summary>
    /// Issues C = epilogue(alpha op(A) op(B) + beta C) with cuBLASLt's <paramref name="epilogue"/> (a cublasLtEpilogue_t
    /// value). <paramref name="vector"/> is the bias (input) or bias gradient (output) of the epilogue, in
    /// <paramref name="vectorType"/>. Returns false, issuing nothing, when cuBLASLt has no algorithm for a fused epilogue;
    /// throws <see cref="CublasException"/> when it has none for a plain GEMM. Arguments are validated by the caller.
    /// </summary>
    internal bool TryRun(CudaTensor c, CudaTensor a, CudaTensor b, int m, int n, int k, bool transA, bool transB,
        float alpha, float beta, uint epilogue, CudaTensor? vector, CudaTensor? aux)
    {
        var key = new GemmPlanKey(m, n, k, transA, transB, a.DType, c.DType, epilogue, vector?.DType, aux is not null,
            AllowTf32 && a.DType == DType.Float32, Alignment(a.Pointer), Alignment(b.Pointer), Alignment(c.Pointer),
            vector is null ? 0 : Alignment(vector.Pointer), aux is null ? 0 : Alignment(aux.Pointer));
        if (!_plans.TryGetValue(key, out var plan))
        {
            plan = CreatePlan(key, vector, aux);
            _plans.Add(key, plan);
        }
        if (!plan.HasAlgorithm)
        {
            if (epilogue == CublasLt.EpilogueDefault)
            {
                throw Status.Cublas(CublasLt.StatusNotSupported,
                    $"cublasLtMatmulAlgoGetHeuristic({Describe(key)}): no algorithm");
            }
            return false;
        }
        nint desc = plan.Desc.DangerousGetHandle();
        if (vector is not null)
        {
            SetPointer(desc, CublasLt.DescBiasPointer, vector.Pointer, "BIAS_POINTER");
        }
        if (aux is not null)
        {
            SetPointer(desc, CublasLt.DescEpilogueAuxPointer, aux.Pointer, "EPILOGUE_AUX_POINTER");
        }
        if (!plan.Tuned && beta == 0f && (long)m * n * k >= TuningMinimumProduct && !_backend.Stream.IsCapturing)
        {
            Tune(plan, c, a, b, alpha);
        }
        int status = Issue(plan, plan.Algorithm, c, a, b, alpha, beta);
        // Some epilogue type combinations pass the heuristic but are refused by cublasLtMatmul's own checks, which
        // run before anything is launched: such a plan falls back to the unfused form from its first use on.
        if (!plan.Used && epilogue != CublasLt.EpilogueDefault &&
            status is CublasLt.StatusInvalidValue or CublasLt.StatusNotSupported)
        {
            plan.SetAlgorithm(null);
            return false;
        }
        Status.CheckCublas(status, $"cublasLtMatmul({Describe(key)})");
        plan.Used = true;
        return true;
    }

    private GemmPlan CreatePlan(GemmPlanKey key, CudaTensor? vector, CudaTensor? aux)
    {
        int device = _backend.Device;
        var plan = new GemmPlan(device);
        try
        {
            nint desc;
            int compute = key.Tf32 ? CublasLt.Compute32FFastTf32 : CublasLt.Compute32F;
            Status.CheckCublas(CublasLt.MatmulDescCreate(&desc, compute, CublasLt.DataFloat32), "cublasLtMatmulDescCreate");
            plan.Desc.Adopt(desc);
            // cuBLASLt's A is our B (op = transB) and its B our A (op = transA).
            SetInt(desc, CublasLt.DescTransA, key.TransB ? CublasLt.OpT : CublasLt.OpN, "TRANSA");
            SetInt(desc, CublasLt.DescTransB, key.TransA ? CublasLt.OpT : CublasLt.OpN, "TRANSB");
            uint epilogue = key.Epilogue;
            Status.CheckCublas(CublasLt.MatmulDescSetAttribute(desc, CublasLt.DescEpilogue, &epilogue, sizeof(uint)),
                "cublasLtMatmulDescSetAttribute(EPILOGUE)");
            if (vector is not null)
            {
                SetInt(desc, CublasLt.DescBiasDataType, DataType(vector.DType), "BIAS_DATA_TYPE");
                SetPointer(desc, CublasLt.DescBiasPointer, vector.Pointer, "BIAS_POINTER");
            }
            if (aux is not null)
            {
                long auxLd = key.N;
                Status.CheckCublas(CublasLt.MatmulDescSetAttribute(desc, CublasLt.DescEpilogueAuxLd, &auxLd, sizeof(long)),
                    "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_LD)");
                SetPointer(desc, CublasLt.DescEpilogueAuxPointer, aux.Pointer, "EPILOGUE_AUX_POINTER");
            }
            int inputType = DataType(key.InputType);
            // Our B, row-major [k, n] (or [n, k] when transB), is column-major [n, k] (or [k, n]).
            plan.A.Adopt(Layout(inputType, key.TransB ? key.K : key.N, key.TransB ? key.N : key.K));
            // Our A, row-major [m, k] (or [k, m] when transA), is column-major [k, m] (or [m, k]).
            plan.B.Adopt(Layout(inputType, key.TransA ? key.M : key.K, key.TransA ? key.K : key.M));
            // C, row-major [m, n], is column-major [n, m].
            plan.C.Adopt(Layout(DataType(key.OutputType), key.N, key.M));
            // The aux leading dimension must be a multiple of 8: without it no fused kernel exists.
            if (!key.HasAux || key.N % 8 == 0)
            {
                plan.SetCandidates(Heuristic(key, desc, plan));
            }
            return plan;
        }
        catch
        {
            plan.Dispose();
            throw;
        }
    }

    private CublasLtMatmulAlgo[] Heuristic(GemmPlanKey key, nint desc, GemmPlan plan)
    {
        nint preference = _preference.DangerousGetHandle();
        SetAlignment(preference, CublasLt.PrefMinAlignmentABytes, key.AlignB, "MIN_ALIGNMENT_A_BYTES");
        SetAlignment(preference, CublasLt.PrefMinAlignmentBBytes, key.AlignA, "MIN_ALIGNMENT_B_BYTES");
        SetAlignment(preference, CublasLt.PrefMinAlignmentCBytes, key.AlignC, "MIN_ALIGNMENT_C_BYTES");
        SetAlignment(preference, CublasLt.PrefMinAlignmentDBytes, key.AlignC, "MIN_ALIGNMENT_D_BYTES");
        var results = stackalloc CublasLtHeuristicResult[TuningCandidates];
        int returned = 0;
        nint cLayout = plan.C.DangerousGetHandle();
        int status = CublasLt.MatmulAlgoGetHeuristic(_handle.DangerousGetHandle(), desc, plan.A.DangerousGetHandle(),
            plan.B.DangerousGetHandle(), cLayout, cLayout, preference, TuningCandidates, results, &returned);
        bool fused = key.Epilogue != CublasLt.EpilogueDefault;
        if (fused && status is CublasLt.StatusNotSupported or CublasLt.StatusInvalidValue)
        {
            return [];
        }
        if (status != CublasLt.StatusNotSupported)
        {
            Status.CheckCublas(status, $"cublasLtMatmulAlgoGetHeuristic({Describe(key)})");
        }
        var candidates = new List<CublasLtMatmulAlgo>();
        for (int i = 0; i < returned; i++)
        {
            if (results[i].State == CublasLt.StatusSuccess)
            {
                candidates.Add(results[i].Algo);
            }
        }
        return [.. candidates];
    }

    /// <summary>
    /// Keeps the heuristic candidate with the shortest median time, on the call's own operands. Large GEMMs run at the
    /// clocks the GPU's power limit allows, and the candidate fastest on a cool GPU is often not the fastest under that
    /// limit (8192^3 bf16 GELU_AUX_BIAS on H200: the first choice ran 8% slower than another candidate once the GPU
    /// was at its limit), so every candidate is timed over several rounds, in a rotating order, each round a block of
    /// back-to-back runs lasting about <see cref="TuningBlockMs"/>. Only called with beta = 0, so the repeated runs
    /// leave C, aux and the bias gradient as one run would.
    /// </summary>
    private void Tune(GemmPlan plan, CudaTensor c, CudaTensor a, CudaTensor b, float alpha)
    {
        plan.Tuned = true;
        if (plan.Candidates.Length < 2)
        {
            return;
        }
        // An untimed run of each loads its kernel and drops candidates that cublasLtMatmul refuses for this problem.
        var usable = new List<CublasLtMatmulAlgo>();
        foreach (var candidate in plan.Candidates)
        {
            if (Issue(plan, candidate, c, a, b, alpha, 0f) == CublasLt.StatusSuccess)
            {
                usable.Add(candidate);
            }
        }
        if (usable.Count < 2)
        {
            if (usable.Count == 1)
            {
                plan.Algorithm = usable[0];
            }
            return;
        }
        double fastest = double.PositiveInfinity;
        foreach (var candidate in usable)
        {
            fastest = Math.Min(fastest, TimeRuns(plan, candidate, c, a, b, alpha, 1));
        }
        int runs = (int)Math.Clamp(Math.Ceiling(TuningBlockMs / Math.Max(fastest, 1e-6)), 1, TuningMaxRuns);
        var times = new double[usable.Count][];
        for (int i = 0; i < usable.Count; i++)
        {
            times[i] = new double[TuningRounds];
        }
        for (int round = 0; round < TuningRounds; round++)
        {
            for (int j = 0; j < usable.Count; j++)
            {
                int i = (j + round) % usable.Count;
                times[i][round] = TimeRuns(plan, usable[i], c, a, b, alpha, runs);
            }
        }
        double best = double.PositiveInfinity;
        plan.TunedMilliseconds = new double[usable.Count];
        for (int i = 0; i < usable.Count; i++)
        {
            Array.Sort(times[i]);
            double median = times[i][TuningRounds / 2] / runs;
            plan.TunedMilliseconds[i] = median;
            if (median < best)
            {
                best = median;
                plan.Algorithm = usable[i];
            }
        }
    }

    /// <summary>Stream time of <paramref name="runs"/> back-to-back runs of one candidate that cuBLASLt accepted before.</summary>
    private double TimeRuns(GemmPlan plan, CublasLtMatmulAlgo candidate, CudaTensor c, CudaTensor a, CudaTensor b,
        float alpha, int runs) =>
        _backend.ElapsedMilliseconds(() =>
        {
            for (int r = 0; r < runs; r++)
            {
                Status.CheckCublas(Issue(plan, candidate, c, a, b, alpha, 0f), "cublasLtMatmul (tuning)");
            }
        });

    private int Issue(GemmPlan plan, CublasLtMatmulAlgo algo, CudaTensor c, CudaTensor a, CudaTensor b, float alpha, float beta)
    {
        nint cLayout = plan.C.DangerousGetHandle();
        return CublasLt.Matmul(_handle.DangerousGetHandle(), plan.Desc.DangerousGetHandle(), &alpha,
            b.Pointer, plan.A.DangerousGetHandle(), a.Pointer, plan.B.DangerousGetHandle(), &beta,
            c.Pointer, cLayout, c.Pointer, cLayout, &algo, _workspace.Pointer, (nuint)WorkspaceBytes, _backend.Stream.Handle);
    }

    private static nint Layout(int dataType, int rows, int cols)
    {
        nint layout;
        Status.CheckCublas(CublasLt.MatrixLayoutCreate(&layout, dataType, (ulong)rows, (ulong)cols, rows),
            $"cublasLtMatrixLayoutCreate({rows} x {cols})");
        return layout;
    }

    private static void SetInt(nint desc, int attribute, int value, string name) =>
        Status.CheckCublas(CublasLt.MatmulDescSetAttribute(desc, attribute, &value, sizeof(int)),
            $"cublasLtMatmulDescSetAttribute({name})");

    private static void SetPointer(nint desc, int attribute, nint value, string name) =>
        Status.CheckCublas(CublasLt.MatmulDescSetAttribute(desc, attribute, &value, (nuint)sizeof(nint)),
            $"cublasLtMatmulDescSetAttribute({name})");

    private static void SetAlignment(nint preference, int attribute, int bytes, string name)
    {
        uint value = (uint)bytes;
        Status.CheckCublas(CublasLt.MatmulPreferenceSetAttribute(preference, attribute, &value, sizeof(uint)),
            $"cublasLtMatmulPreferenceSetAttribute({name})");
    }

    /// <summary>The largest power of two (at most 256) dividing the address.</summary>
    internal static int Alignment(nint pointer) =>
        pointer == 0 ? 256 : (int)Math.Min(256, (long)pointer & -(long)pointer);

    private static int DataType(DType dtype) => dtype switch
    {
        DType.Float32 => CublasLt.DataFloat32,
        DType.BFloat16 => CublasLt.DataBFloat16,
        DType.Float16 => CublasLt.DataFloat16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "cuBLASLt GEMMs take Float32, BFloat16 or Float16"),
    };

    private static string Describe(GemmPlanKey key) =>
        $"m={key.M} n={key.N} k={key.K} transA={key.TransA} transB={key.TransB} {key.InputType}->{key.OutputType} " +
        $"epilogue={key.Epilogue}";

    public void Dispose()
    {
        foreach (var plan in _plans.Values)
        {
            plan.Dispose();
        }
        _plans.Clear();
        _workspace.Dispose();
        _preference.Dispose();
        _handle.Dispose();
    }

    /// <summary>The cached descriptors of one problem and the algorithm chosen for it (none: not offered).</summary>
    private sealed class GemmPlan(int device) : IDisposable
    {
        public MatmulDescHandle Desc { get; } = new(device);

        public MatrixLayoutHandle A { get; } = new(device);

        public MatrixLayoutHandle B { get; } = new(device);

        public MatrixLayoutHandle C { get; } = new(device);

        /// <summary>The algorithm every call uses: the heuristic's first candidate until tuning picks the fastest.</summary>
        public CublasLtMatmulAlgo Algorithm { get; set; }

        public bool HasAlgorithm { get; private set; }

        /// <summary>The heuristic's candidates, best guess first.</summary>
        public CublasLtMatmulAlgo[] Candidates { get; private set; } = [];

        /// <summary>True once the candidates have been timed (or there was nothing to choose).</summary>
        public bool Tuned { get; set; }

        /// <summary>The median time of one run of each candidate that cuBLASLt accepted, when they were timed.</summary>
        public double[] TunedMilliseconds { get; set; } = [];

        public void SetCandidates(CublasLtMatmulAlgo[] candidates)
        {
            Candidates = candidates;
            SetAlgorithm(candidates.Length > 0 ? candidates[0] : null);
        }

        /// <summary>True once cublasLtMatmul has accepted the plan.</summary>
        public bool Used { get; set; }

        public void SetAlgorithm(CublasLtMatmulAlgo? algorithm)
        {
            HasAlgorithm = algorithm.HasValue;
            Algorithm = algorithm.GetValueOrDefault();
        }

        public void Dispose()
        {
            C.Dispose();
            B.Dispose();
            A.Dispose();
            Desc.Dispose();
        }
    }
}
