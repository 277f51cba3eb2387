using System.Runtime.InteropServices;

namespace ModelParallel.Interop;

/// <summary>Declarations of cuBLASLt (libcublasLt.so). Functions return a cublasStatus_t (0 = success).</summary>
internal static unsafe partial class CublasLt
{
    public const string Library = "cublasLt";

    public const int StatusSuccess = 0;
    public const int StatusInvalidValue = 7;
    public const int StatusNotSupported = 15;

    // cublasComputeType_t
    public const int Compute32F = 68;
    public const int Compute32FFastTf32 = 77;

    // cudaDataType_t
    public const int DataFloat32 = 0;
    public const int DataFloat16 = 2;
    public const int DataBFloat16 = 14;

    // cublasOperation_t
    public const int OpN = 0;
    public const int OpT = 1;

    // cublasLtMatmulDescAttributes_t
    public const int DescTransA = 3;
    public const int DescTransB = 4;
    public const int DescEpilogue = 7;
    public const int DescBiasPointer = 8;
    public const int DescEpilogueAuxPointer = 11;
    public const int DescEpilogueAuxLd = 12;
    public const int DescBiasDataType = 26;

    // cublasLtMatmulPreferenceAttributes_t
    public const int PrefMaxWorkspaceBytes = 1;
    public const int PrefMinAlignmentABytes = 5;
    public const int PrefMinAlignmentBBytes = 6;
    public const int PrefMinAlignmentCBytes = 7;
    public const int PrefMinAlignmentDBytes = 8;

    // cublasLtMatmulAlgoConfigAttributes_t (uint32 values)
    public const int AlgoConfigId = 0;
    public const int AlgoConfigTileId = 1;
    public const int AlgoConfigStagesId = 6;

    // cublasLtEpilogue_t
    public const uint EpilogueDefault = 1;
    public const uint EpilogueBias = 4;
    public const uint EpilogueGelu = 32;
    public const uint EpilogueGeluAux = 32 | 128;
    public const uint EpilogueGeluBias = 32 | 4;
    public const uint EpilogueGeluAuxBias = 32 | 128 | 4;
    public const uint EpilogueDGelu = 64 | 128;
    public const uint EpilogueDGeluBGrad = 64 | 128 | 16;
    public const uint EpilogueBGradB = 512;

    [LibraryImport(Library, EntryPoint = "cublasLtCreate")]
    public static partial int Create(nint* handle);

    [LibraryImport(Library, EntryPoint = "cublasLtDestroy")]
    public static partial int Destroy(nint handle);

    [LibraryImport(Library, EntryPoint = "cublasLtGetVersion")]
    public static partial nuint GetVersion();

    [LibraryImport(Library, EntryPoint = "cublasLtGetStatusName")]
    public static partial byte* GetStatusName(int status);

    [LibraryImport(Library, EntryPoint = "cublasLtGetStatusString")]
    public static partial byte* GetStatusString(int status);

    [LibraryImport(Library, EntryPoint = "cublasLtMatmulDescCreate")]
    public static partial int MatmulDescCreate(nint* desc, int computeType, int scaleType);

    [LibraryImport(Library, EntryPoint = "cublasLtMatmulDescSetAttribute")]
    public static partial int MatmulDescSetAttribute(nint desc, int attribute, void* value, nuint bytes);

    [LibraryImport(Library, EntryPoint = "cublasLtMatmulDescDestroy")]
    public static partial int MatmulDescDestroy(nint desc);

    [LibraryImport(Library, EntryPoint = "cublasLtMatrixLayoutCreate")]
    public static partial int MatrixLayoutCreate(nint* layout, int dataType, ulong rows, ulong cols, long ld);

    [LibraryImport(Library, EntryPoint = "cublasLtMatrixLayoutSetAttribute")]
    public static partial int MatrixLayoutSetAttribute(nint layout, int attribute, void* value, nuint bytes);

    [LibraryImport(Library, EntryPoint = "cublasLtMatrixLayoutDestroy")]
    public static partial int MatrixLayoutDestroy(nint layout);

    [LibraryImport(Library, EntryPoint = "cublasLtMatmulPreferenceCreate")]
    public static partial int MatmulPreferenceCreate(nint* preference);

    [LibraryImport(Library, EntryPoint = "cublasLtMatmulPreferenceSetAttribute")]
    public static partial int MatmulPreferenceSetAttribute(nint preference, int attribute, void* value, nuint bytes);

    [LibraryImport(Library, EntryPoint = "cublasLtMatmulPreferenceDestroy")]
    public static partial int MatmulPreferenceDestroy(nint preference);

    [LibraryImport(Library, EntryPoint = "cublasLtMatmulAlgoGetHeuristic")]
    public static partial int MatmulAlgoGetHeuristic(nint handle, nint desc, nint aLayout, nint bLayout, nint cLayout,
        nint dLayout, nint preference, int requestedCount, CublasLtHeuristicResult* results, int* returnedCount);

    [LibraryImport(Library, EntryPoint = "cublasLtMatmulAlgoConfigGetAttribute")]
    public static partial int MatmulAlgoConfigGetAttribute(CublasLtMatmulAlgo* algo, int attribute, void* value,
        nuint bytes, nuint* written);

    [LibraryImport(Library, EntryPoint = "cublasLtMatmul")]
    public static partial int Matmul(nint handle, nint desc, void* alpha, nint a, nint aLayout, nint b, nint bLayout,
        void* beta, nint c, nint cLayout, nint d, nint dLayout, CublasLtMatmulAlgo* algo, nint workspace,
        nuint workspaceBytes, nint stream);
}
