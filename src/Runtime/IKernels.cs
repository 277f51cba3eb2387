namespace ModelParallel.Runtime;

/// <summary>What a GEMM does to its product before writing C (row-major terms; see <see cref="IKernels.Gemm"/>).</summary>
public enum GemmEpilogue
{
    /// <summary>C = alpha op(A) op(B) + beta C.</summary>
    None,

    /// <summary>C = alpha op(A) op(B) + beta C + bias (bias has n elements, broadcast over rows).</summary>
    Bias,

    /// <summary>Z = alpha op(A) op(B) + bias; aux = Z when given; C = gelu(Z). beta must be 0.</summary>
    BiasGelu,

    /// <summary>Z = alpha op(A) op(B); aux = Z when given; C = gelu(Z). beta must be 0.</summary>
    Gelu,

    /// <summary>C = (alpha op(A) op(B)) * gelu'(aux), aux being the pre-activation kept by
    /// <see cref="BiasGelu"/>; when biasGrad is given, biasGrad[j] = sum over rows i of C[i, j]. beta must be 0.</summary>
    DGelu,

    /// <summary>C = alpha op(A) op(B) + beta C, and biasGrad[i] = sum over k of op(A)[i, k]
    /// (the bias gradient of a linear layer computed by its weight-gradient GEMM, where op(A) = dY^T).</summary>
    BiasGradA,
}

/// <summary>Which normalisation a norm kernel computes.</summary>
public enum NormKind
{
    /// <summary>y = x / sqrt(mean(x^2) + eps) * weight.</summary>
    RmsNorm,

    /// <summary>y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias.</summary>
    LayerNorm,
}

/// <summary>Sizes of one attention call. Q is [seq, batch, heads, headDim], K and V are
/// [seq, batch, kvHeads, headDim] (tokens sequence-major), LSE is [batch, heads, seq] in the stats dtype.
/// Query head h attends with kv head h / (heads / kvHeads).</summary>
public readonly record struct AttentionShape(int Batch, int SeqLen, int Heads, int KvHeads, int HeadDim, bool Causal)
{
    /// <summary>Softmax scale, 1/sqrt(headDim).</summary>
    public float Scale => 1f / MathF.Sqrt(HeadDim);

    public void Validate()
    {
        if (Batch <= 0 || SeqLen <= 0 || Heads <= 0 || KvHeads <= 0 || HeadDim <= 0)
        {
            throw new ArgumentException($"attention sizes must be positive: {this}");
        }
        if (Heads % KvHeads != 0)
        {
            throw new ArgumentException($"heads {Heads} is not a multiple of kvHeads {KvHeads}");
        }
    }
}

/// <summary>
/// The compute seam every layer calls. One implementation per backend: the CPU reference
/// (float32 or float64, all tensors in the compute dtype) and CUDA (activations and weights in
/// <see cref="IBackend.Compute"/>, parameter gradients in <see cref="IBackend.GradType"/>, per-row
/// statistics in <see cref="IBackend.StatsType"/>). All matrices are row-major. Every method
/// validates tensor sizes and dtypes and throws <see cref="ArgumentException"/> naming the bad value.
/// Calls are ordered on the backend's stream. Unless a parameter says "accumulates", outputs are overwritten.
/// </summary>
public interface IKernels
{
    /// <summary>
    /// C[m, n] = epilogue(alpha op(A) op(B) + beta C). op(A) is [m, k]: A is stored [m, k], or [k, m] when
    /// transA. op(B) is [k, n]: B is stored [k, n], or [n, k] when transB. A and B have the compute dtype;
    /// C has the compute dtype or the grad dtype (float32 accumulation of weight gradients with beta = 1).
    /// bias and biasGrad: n elements (m for <see cref="GemmEpilogue.BiasGradA"/>), grad dtype for biasGrad.
    /// aux: m*n elements in the compute dtype.
    /// </summary>
    void Gemm(Tensor c, Tensor a, Tensor b, int m, int n, int k, bool transA, bool transB,
        float alpha = 1f, float beta = 0f, GemmEpilogue epilogue = GemmEpilogue.None,
        Tensor? bias = null, Tensor? aux = null, Tensor? biasGrad = null);

    /// <summary>Flash-style softmax attention. o: like q; lse: [batch, heads, seq], log-sum-exp of the scaled scores.</summary>
    void AttentionForward(Tensor o, Tensor lse, Tensor q, Tensor k, Tensor v, AttentionShape shape);

    /// <summary>dq, dk, dv (overwritten) from dO and what forward kept.</summary>
    void AttentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dO, Tensor q, Tensor k, Tensor v,
        Tensor o, Tensor lse, AttentionShape shape);

    /// <summary>
    /// sum = x + residual (when residual is given; else sum may be null and x is normalised);
    /// y = norm(sum) over rows of <paramref name="cols"/>; stats = [rows] mean then [rows] rstd (2*rows, stats dtype;
    /// the mean half is unused by RmsNorm). bias only for LayerNorm (may be null).
    /// </summary>
    void NormForward(NormKind kind, Tensor y, Tensor? sum, Tensor stats, Tensor x, Tensor? residual,
        Tensor weight, Tensor? bias, int rows, int cols, double eps);

    /// <summary>
    /// dx = d norm / d x applied to dy, plus dResidual when given (the gradient arriving on the residual
    /// path); dWeight and dBias (grad dtype) accumulate. x is the normalised input (the sum of forward).
    /// </summary>
    void NormBackward(NormKind kind, Tensor dx, Tensor dWeight, Tensor? dBias, Tensor dy, Tensor? dResidual,
        Tensor x, Tensor weight, Tensor stats, int rows, int cols);

    /// <summary>y = gelu(x), tanh form, elementwise.</summary>
    void GeluForward(Tensor y, Tensor x);

    /// <summary>dx = dy * gelu'(x), tanh form.</summary>
    void GeluBackward(Tensor dx, Tensor dy, Tensor x);

    /// <summary>gateUp is [rows, 2*cols]: per row the gate half then the up half; y[rows, cols] = silu(gate) * up.</summary>
    void SwigluForward(Tensor y, Tensor gateUp, int rows, int cols);

    /// <summary>dGateUp[rows, 2*cols] from dy[rows, cols] and forward's gateUp.</summary>
    void SwigluBackward(Tensor dGateUp, Tensor dy, Tensor gateUp, int rows, int cols);

    /// <summary>
    /// Rotary embedding in place on x = [seq, batch, heads, headDim] (rotate-half form: pairs (i, i + headDim/2),
    /// angle = position * rotary.InverseFrequency(i, headDim), that is theta^(-2i/headDim) with the Llama 3 rescaling
    /// when given, position = sequence index + positionOffset). backward applies the inverse rotation (the gradient
    /// of forward).
    /// </summary>
    void Rope(Tensor x, int seqLen, int batch, int heads, int headDim, RotaryEmbedding rotary, int positionOffset, bool backward);

    /// <summary>out[t, :] = table[ids[t] - vocabStart, :] when vocabStart &lt;= ids[t] &lt; vocabStart + vocabRows, else 0.
    /// ids: int32 [tokens]; table [vocabRows, hidden].</summary>
    void EmbeddingForward(Tensor output, Tensor ids, Tensor table, int tokens, int hidden, int vocabStart, int vocabRows);

    /// <summary>dTable (grad dtype) accumulates dOut rows for the ids inside [vocabStart, vocabStart + vocabRows).</summary>
    void EmbeddingBackward(Tensor dTable, Tensor dOut, Tensor ids, int tokens, int hidden, int vocabStart, int vocabRows);

    /// <summary>rowMax[r] = max over the row of logits [rows, cols] (stats dtype).</summary>
    void CrossEntropyRowMax(Tensor rowMax, Tensor logits, int rows, int cols);

    /// <summary>
    /// sumExp[r] = sum_j exp(logits[r, j] - rowMax[r]); targetLogit[r] = logits[r, targets[r] - vocabStart] when the
    /// target falls in this shard, else 0 (stats dtype; targets int32).
    /// </summary>
    void CrossEntropySumExp(Tensor sumExp, Tensor targetLogit, Tensor logits, Tensor rowMax, Tensor targets,
        int rows, int cols, int vocabStart);

    /// <summary>loss[r] = log(sumExp[r]) + rowMax[r] - targetLogit[r].</summary>
    void CrossEntropyLoss(Tensor loss, Tensor rowMax, Tensor sumExp, Tensor targetLogit, int rows);

    /// <summary>dLogits[r, j] = scale * (softmax[r, j] - [j == targets[r] - vocabStart]).</summary>
    void CrossEntropyBackward(Tensor dLogits, Tensor logits, Tensor rowMax, Tensor sumExp, Tensor targets,
        int rows, int cols, int vocabStart, double scale);

    /// <summary>
    /// One AdamW step (decoupled weight decay, bias-corrected, step counted from 1) on master weights
    /// (master dtype) with moments m and v (master dtype); grad in the grad dtype; when model is given it
    /// receives the updated weights in its own dtype.
    /// </summary>
    void AdamW(Tensor master, Tensor? model, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2,
        float eps, float weightDecay, int step);

    /// <summary>y = a + b elementwise (same dtype and count).</summary>
    void Add(Tensor y, Tensor a, Tensor b);

    /// <summary>y += alpha * x; x and y may differ in dtype (e.g. a compute-dtype gradient into a grad-dtype buffer).</summary>
    void Axpy(Tensor y, float alpha, Tensor x);

    /// <summary>y[rows, cols] += bias[cols].</summary>
    void AddBias(Tensor y, Tensor bias, int rows, int cols);

    /// <summary>dBias[cols] (grad dtype) accumulates the column sums of dy[rows, cols].</summary>
    void BiasGrad(Tensor dBias, Tensor dy, int rows, int cols);

    /// <summary>Every element = value.</summary>
    void Fill(Tensor t, double value);

    /// <summary>dst = src converted to dst's dtype (counts equal).</summary>
    void Convert(Tensor dst, Tensor src);

    /// <summary>
    /// Copies a [rows, cols] block: dst[r * dstStride + c] = src[r * srcStride + c] (element strides,
    /// same dtype). Splits and concatenates along the last dimension.
    /// </summary>
    void Copy2D(Tensor dst, int dstStride, Tensor src, int srcStride, int rows, int cols);
}
