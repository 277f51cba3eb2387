using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: DisableRuntimeMarshalling]

namespace ModelParallel.Interop;

/// <summary>Declarations of libmpnative.so (native/include/mp_native.h). Every function returns an mp_status.</summary>
internal static unsafe partial class MpNative
{
    public const string Library = "mpnative";

    public const int Ok = 0;

    [LibraryImport(Library, EntryPoint = "mp_version_get")]
    public static partial int VersionGet(int* version);

    [LibraryImport(Library, EntryPoint = "mp_last_error")]
    public static partial byte* LastError();

    [LibraryImport(Library, EntryPoint = "mp_attention_fwd")]
    public static partial int AttentionFwd(nint o, nint lse, nint q, nint k, nint v, int batch, int seq, int heads,
        int kvHeads, int headDim, int causal, float scale, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_attention_bwd_workspace_bytes")]
    public static partial int AttentionBwdWorkspaceBytes(nuint* bytes, int batch, int seq, int heads, int kvHeads, int headDim);

    [LibraryImport(Library, EntryPoint = "mp_attention_bwd")]
    public static partial int AttentionBwd(nint dq, nint dk, nint dv, nint dout, nint q, nint k, nint v, nint o,
        nint lse, nint workspace, nuint workspaceBytes, int batch, int seq, int heads, int kvHeads, int headDim,
        int causal, float scale, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_norm_fwd")]
    public static partial int NormFwd(int kind, nint y, nint sum, nint stats, nint x, nint residual, nint weight,
        nint bias, int rows, int cols, float eps, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_norm_bwd")]
    public static partial int NormBwd(int kind, nint dx, nint dweight, nint dbias, nint dy, nint dresidual, nint x,
        nint weight, nint stats, int rows, int cols, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_gelu_fwd")]
    public static partial int GeluFwd(nint y, nint x, long count, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_gelu_bwd")]
    public static partial int GeluBwd(nint dx, nint dy, nint x, long count, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_swiglu_fwd")]
    public static partial int SwigluFwd(nint y, nint gateUp, int rows, int cols, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_swiglu_bwd")]
    public static partial int SwigluBwd(nint dgateUp, nint dy, nint gateUp, int rows, int cols, int dtype, nint stream);

    /// <summary>llama3: null for plain theta^(-2i/headDim) frequencies.</summary>
    [LibraryImport(Library, EntryPoint = "mp_rope")]
    public static partial int Rope(nint x, int seq, int batch, int heads, int headDim, double theta,
        MpRopeScaling* llama3, int positionOffset, int backward, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_embedding_fwd")]
    public static partial int EmbeddingFwd(nint output, nint ids, nint table, int tokens, int hidden, int vocabStart,
        int vocabRows, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_embedding_bwd")]
    public static partial int EmbeddingBwd(nint dtable, nint dout, nint ids, int tokens, int hidden, int vocabStart,
        int vocabRows, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_xent_row_max")]
    public static partial int XentRowMax(nint rowMax, nint logits, int rows, int cols, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_xent_sum_exp")]
    public static partial int XentSumExp(nint sumExp, nint targetLogit, nint logits, nint rowMax, nint targets,
        int rows, int cols, int vocabStart, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_xent_loss")]
    public static partial int XentLoss(nint loss, nint rowMax, nint sumExp, nint targetLogit, int rows, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_xent_bwd")]
    public static partial int XentBwd(nint dlogits, nint logits, nint rowMax, nint sumExp, nint targets, int rows,
        int cols, int vocabStart, float scale, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_adamw_step")]
    public static partial int AdamWStep(nint master, nint model, int modelDtype, nint grad, nint m, nint v, long count,
        float lr, float beta1, float beta2, float eps, float weightDecay, int step, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_add")]
    public static partial int Add(nint y, nint a, nint b, long count, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_elementwise_max")]
    public static partial int ElementwiseMax(nint y, nint a, nint b, long count, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_axpy")]
    public static partial int Axpy(nint y, int yDtype, float alpha, nint x, int xDtype, long count, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_add_bias")]
    public static partial int AddBias(nint y, nint bias, int rows, int cols, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_bias_grad")]
    public static partial int BiasGrad(nint dbias, nint dy, int rows, int cols, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_fill")]
    public static partial int Fill(nint t, long count, double value, int dtype, nint stream);

    [LibraryImport(Library, EntryPoint = "mp_convert")]
    public static partial int Convert(nint dst, int dstDtype, nint src, int srcDtype, long count, nint stream);
}
