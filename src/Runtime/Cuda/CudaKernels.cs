using ModelParallel.Interop;

namespace ModelParallel.Runtime.Cuda;

/// <summary>
/// <see cref="IKernels"/> on one <see cref="CudaBackend"/>: GEMMs through <see cref="CublasLtGemm"/>, the rest through
/// libmpnative.so, all issued on the backend's stream. Every argument is checked first (a CUDA tensor of this device,
/// its dtype, its element count against the sizes), and a bad one throws <see cref="ArgumentException"/> (or
/// <see cref="ArgumentOutOfRangeException"/>) naming it; a kernel failure throws <see cref="NativeKernelException"/>.
/// Activations are in any floating dtype the kernels support (BFloat16 on this backend); statistics, gradients of
/// parameters and optimizer state are Float32.
/// </summary>
public sealed partial class CudaKernels : IKernels
{
    private readonly CudaBackend _backend;

    internal CudaKernels(CudaBackend backend) => _backend = backend;

    private nint Stream => _backend.Stream.Handle;

    private DType Stats => _backend.StatsType;

    private DType Grad => _backend.GradType;

    public void AttentionForward(Tensor o, Tensor lse, Tensor q, Tensor k, Tensor v, AttentionShape shape)
    {
        shape.Validate();
        var (qCount, kvCount, lseCount) = AttentionCounts(shape);
        var tq = Floating(q, nameof(q), qCount, "seq x batch x heads x headDim");
        var tk = Like(k, nameof(k), tq, kvCount, "seq x batch x kvHeads x headDim");
        var tv = Like(v, nameof(v), tq, kvCount, "seq x batch x kvHeads x headDim");
        var to = Like(o, nameof(o), tq, qCount, "like q");
        var tl = Arg(lse, nameof(lse), Stats, lseCount, "batch x heads x seq");
        Begin();
        Native(MpNative.AttentionFwd(to.Pointer, tl.Pointer, tq.Pointer, tk.Pointer, tv.Pointer, shape.Batch, shape.SeqLen,
            shape.Heads, shape.KvHeads, shape.HeadDim, shape.Causal ? 1 : 0, shape.Scale, NativeDType.Of(tq.DType), Stream),
            $"mp_attention_fwd({shape})");
    }

    public unsafe void AttentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dO, Tensor q, Tensor k, Tensor v,
        Tensor o, Tensor lse, AttentionShape shape)
    {
        shape.Validate();
        var (qCount, kvCount, lseCount) = AttentionCounts(shape);
        var tq = Floating(q, nameof(q), qCount, "seq x batch x heads x headDim");
        var tk = Like(k, nameof(k), tq, kvCount, "seq x batch x kvHeads x headDim");
        var tv = Like(v, nameof(v), tq, kvCount, "seq x batch x kvHeads x headDim");
        var to = Like(o, nameof(o), tq, qCount, "like q");
        var tdO = Like(dO, nameof(dO), tq, qCount, "like q");
        var tdq = Like(dq, nameof(dq), tq, qCount, "like q");
        var tdk = Like(dk, nameof(dk), tq, kvCount, "like k");
        var tdv = Like(dv, nameof(dv), tq, kvCount, "like v");
        var tl = Arg(lse, nameof(lse), Stats, lseCount, "batch x heads x seq");
        Begin();
        nuint bytes;
        Native(MpNative.AttentionBwdWorkspaceBytes(&bytes, shape.Batch, shape.SeqLen, shape.Heads, shape.KvHeads, shape.HeadDim),
            $"mp_attention_bwd_workspace_bytes({shape})");
        nint workspace = _backend.Workspace((long)bytes);
        Native(MpNative.AttentionBwd(tdq.Pointer, tdk.Pointer, tdv.Pointer, tdO.Pointer, tq.Pointer, tk.Pointer, tv.Pointer,
            to.Pointer, tl.Pointer, workspace, bytes, shape.Batch, shape.SeqLen, shape.Heads, shape.KvHeads, shape.HeadDim,
            shape.Causal ? 1 : 0, shape.Scale, NativeDType.Of(tq.DType), Stream), $"mp_attention_bwd({shape})");
    }

    public void NormForward(NormKind kind, Tensor y, Tensor? sum, Tensor stats, Tensor x, Tensor? residual, Tensor weight,
        Tensor? bias, int rows, int cols, double eps)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        if (!(eps > 0) || !float.IsFinite((float)eps))
        {
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be positive and finite");
        }
        long count = (long)rows * cols;
        var tx = Floating(x, nameof(x), count, "rows x cols");
        var ty = Like(y, nameof(y), tx, count, "rows x cols");
        var tr = residual is null ? null : Like(residual, nameof(residual), tx, count, "rows x cols");
        if (residual is not null && sum is null)
        {
            throw new ArgumentNullException(nameof(sum), "sum (x + residual) is needed when residual is given");
        }
        var ts = sum is null ? null : Like(sum, nameof(sum), tx, count, "rows x cols");
        var tw = Like(weight, nameof(weight), tx, cols, "cols");
        var tb = NormBias(kind, bias, nameof(bias), tx, cols);
        var tstats = Arg(stats, nameof(stats), Stats, 2L * rows, "2 x rows (mean, then rstd)");
        Begin();
        if (tr is null && ts is not null)
        {
            // Without a residual the sum is x itself; the kernel then normalises x alone.
            Status.CheckCuda(CudaRuntime.MemcpyAsync(ts.Pointer, tx.Pointer, (nuint)tx.Bytes, CudaRuntime.MemcpyDeviceToDevice,
                Stream), $"cudaMemcpyAsync(norm sum = x, {tx.Bytes} bytes)");
            ts = null;
        }
        Native(MpNative.NormFwd(NormCode(kind), ty.Pointer, Pointer(ts), tstats.Pointer, tx.Pointer, Pointer(tr), tw.Pointer,
            Pointer(tb), rows, cols, (float)eps, NativeDType.Of(tx.DType), Stream), $"mp_norm_fwd({kind}, {rows} x {cols})");
    }

    public void NormBackward(NormKind kind, Tensor dx, Tensor dWeight, Tensor? dBias, Tensor dy, Tensor? dResidual,
        Tensor x, Tensor weight, Tensor stats, int rows, int cols)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        long count = (long)rows * cols;
        var tx = Floating(x, nameof(x), count, "rows x cols");
        var tdy = Like(dy, nameof(dy), tx, count, "rows x cols");
        var tdx = Like(dx, nameof(dx), tx, count, "rows x cols");
        var tdr = dResidual is null ? null : Like(dResidual, nameof(dResidual), tx, count, "rows x cols");
        var tw = Like(weight, nameof(weight), tx, cols, "cols");
        var tdw = Arg(dWeight, nameof(dWeight), Grad, cols, "cols");
        if (kind == NormKind.RmsNorm && dBias is not null)
        {
            throw new ArgumentException("RmsNorm has no bias, so dBias must be null", nameof(dBias));
        }
        var tdb = dBias is null ? null : Arg(dBias, nameof(dBias), Grad, cols, "cols");
        var tstats = Arg(stats, nameof(stats), Stats, 2L * rows, "2 x rows (mean, then rstd)");
        Begin();
        Native(MpNative.NormBwd(NormCode(kind), tdx.Pointer, tdw.Pointer, Pointer(tdb), tdy.Pointer, Pointer(tdr), tx.Pointer,
            tw.Pointer, tstats.Pointer, rows, cols, NativeDType.Of(tx.DType), Stream), $"mp_norm_bwd({kind}, {rows} x {cols})");
    }

    public void GeluForward(Tensor y, Tensor x)
    {
        var tx = Floating(x, nameof(x));
        var ty = Like(y, nameof(y), tx, tx.Count, "x.Count");
        if (tx.Count == 0)
        {
            return;
        }
        Begin();
        Native(MpNative.GeluFwd(ty.Pointer, tx.Pointer, tx.Count, NativeDType.Of(tx.DType), Stream), $"mp_gelu_fwd({tx.Count})");
    }

    public void GeluBackward(Tensor dx, Tensor dy, Tensor x)
    {
        var tx = Floating(x, nameof(x));
        var tdy = Like(dy, nameof(dy), tx, tx.Count, "x.Count");
        var tdx = Like(dx, nameof(dx), tx, tx.Count, "x.Count");
        if (tx.Count == 0)
        {
            return;
        }
        Begin();
        Native(MpNative.GeluBwd(tdx.Pointer, tdy.Pointer, tx.Pointer, tx.Count, NativeDType.Of(tx.DType), Stream),
            $"mp_gelu_bwd({tx.Count})");
    }

    public void SwigluForward(Tensor y, Tensor gateUp, int rows, int cols)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        var tg = Floating(gateUp, nameof(gateUp), 2L * rows * cols, "rows x 2 cols");
        var ty = Like(y, nameof(y), tg, (long)rows * cols, "rows x cols");
        Begin();
        Native(MpNative.SwigluFwd(ty.Pointer, tg.Pointer, rows, cols, NativeDType.Of(tg.DType), Stream),
            $"mp_swiglu_fwd({rows} x {cols})");
    }

    public void SwigluBackward(Tensor dGateUp, Tensor dy, Tensor gateUp, int rows, int cols)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        var tg = Floating(gateUp, nameof(gateUp), 2L * rows * cols, "rows x 2 cols");
        var tdy = Like(dy, nameof(dy), tg, (long)rows * cols, "rows x cols");
        var tdg = Like(dGateUp, nameof(dGateUp), tg, 2L * rows * cols, "rows x 2 cols");
        Begin();
        Native(MpNative.SwigluBwd(tdg.Pointer, tdy.Pointer, tg.Pointer, rows, cols, NativeDType.Of(tg.DType), Stream),
            $"mp_swiglu_bwd({rows} x {cols})");
    }

    public unsafe void Rope(Tensor x, int seqLen, int batch, int heads, int headDim, RotaryEmbedding rotary, int positionOffset,
        bool backward)
    {
        Positive(seqLen, nameof(seqLen));
        Positive(batch, nameof(batch));
        Positive(heads, nameof(heads));
        Positive(headDim, nameof(headDim));
        if (headDim % 2 != 0)
        {
            throw new ArgumentException($"headDim {headDim} must be even (rotation pairs i and i + headDim/2)", nameof(headDim));
        }
        rotary.Validate(nameof(rotary));
        ArgumentOutOfRangeException.ThrowIfNegative(positionOffset);
        var tx = Floating(x, nameof(x), (long)seqLen * batch * heads * headDim, "seq x batch x heads x headDim");
        var llama3 = rotary.Llama3;
        var scaling = llama3 is null ? default : new MpRopeScaling
        {
            Factor = llama3.Factor,
            LowFreqFactor = llama3.LowFreqFactor,
            HighFreqFactor = llama3.HighFreqFactor,
            OriginalMaxPositions = llama3.OriginalMaxPositions,
        };
        Begin();
        Native(MpNative.Rope(tx.Pointer, seqLen, batch, heads, headDim, rotary.Theta, llama3 is null ? null : &scaling,
            positionOffset, backward ? 1 : 0, NativeDType.Of(tx.DType), Stream),
            $"mp_rope({seqLen} x {batch} x {heads} x {headDim}, theta {rotary.Theta}{(llama3 is null ? "" : $", {llama3}")})");
    }

    public void EmbeddingForward(Tensor output, Tensor ids, Tensor table, int tokens, int hidden, int vocabStart, int vocabRows)
    {
        Positive(tokens, nameof(tokens));
        Positive(hidden, nameof(hidden));
        Positive(vocabRows, nameof(vocabRows));
        ArgumentOutOfRangeException.ThrowIfNegative(vocabStart);
        var tt = Floating(table, nameof(table), (long)vocabRows * hidden, "vocabRows x hidden");
        var ti = Arg(ids, nameof(ids), DType.Int32, tokens, "tokens");
        var to = Like(output, nameof(output), tt, (long)tokens * hidden, "tokens x hidden");
        Begin();
        Native(MpNative.EmbeddingFwd(to.Pointer, ti.Pointer, tt.Pointer, tokens, hidden, vocabStart, vocabRows,
            NativeDType.Of(tt.DType), Stream), $"mp_embedding_fwd({tokens} tokens, {vocabRows} x {hidden})");
    }

    public void EmbeddingBackward(Tensor dTable, Tensor dOut, Tensor ids, int tokens, int hidden, int vocabStart, int vocabRows)
    {
        Positive(tokens, nameof(tokens));
        Positive(hidden, nameof(hidden));
        Positive(vocabRows, nameof(vocabRows));
        ArgumentOutOfRangeException.ThrowIfNegative(vocabStart);
        var tdt = Arg(dTable, nameof(dTable), Grad, (long)vocabRows * hidden, "vocabRows x hidden");
        var tdo = Floating(dOut, nameof(dOut), (long)tokens * hidden, "tokens x hidden");
        var ti = Arg(ids, nameof(ids), DType.Int32, tokens, "tokens");
        Begin();
        Native(MpNative.EmbeddingBwd(tdt.Pointer, tdo.Pointer, ti.Pointer, tokens, hidden, vocabStart, vocabRows,
            NativeDType.Of(tdo.DType), Stream), $"mp_embedding_bwd({tokens} tokens, {vocabRows} x {hidden})");
    }

    public void CrossEntropyRowMax(Tensor rowMax, Tensor logits, int rows, int cols)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        var tl = Floating(logits, nameof(logits), (long)rows * cols, "rows x cols");
        var tm = Arg(rowMax, nameof(rowMax), Stats, rows, "rows");
        Begin();
        Native(MpNative.XentRowMax(tm.Pointer, tl.Pointer, rows, cols, NativeDType.Of(tl.DType), Stream),
            $"mp_xent_row_max({rows} x {cols})");
    }

    public void CrossEntropySumExp(Tensor sumExp, Tensor targetLogit, Tensor logits, Tensor rowMax, Tensor targets,
        int rows, int cols, int vocabStart)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        ArgumentOutOfRangeException.ThrowIfNegative(vocabStart);
        var tl = Floating(logits, nameof(logits), (long)rows * cols, "rows x cols");
        var tm = Arg(rowMax, nameof(rowMax), Stats, rows, "rows");
        var tt = Arg(targets, nameof(targets), DType.Int32, rows, "rows");
        var ts = Arg(sumExp, nameof(sumExp), Stats, rows, "rows");
        var ttl = Arg(targetLogit, nameof(targetLogit), Stats, rows, "rows");
        Begin();
        Native(MpNative.XentSumExp(ts.Pointer, ttl.Pointer, tl.Pointer, tm.Pointer, tt.Pointer, rows, cols, vocabStart,
            NativeDType.Of(tl.DType), Stream), $"mp_xent_sum_exp({rows} x {cols})");
    }

    public void CrossEntropyLoss(Tensor loss, Tensor rowMax, Tensor sumExp, Tensor targetLogit, int rows)
    {
        Positive(rows, nameof(rows));
        var tloss = Arg(loss, nameof(loss), Stats, rows, "rows");
        var tm = Arg(rowMax, nameof(rowMax), Stats, rows, "rows");
        var ts = Arg(sumExp, nameof(sumExp), Stats, rows, "rows");
        var ttl = Arg(targetLogit, nameof(targetLogit), Stats, rows, "rows");
        Begin();
        Native(MpNative.XentLoss(tloss.Pointer, tm.Pointer, ts.Pointer, ttl.Pointer, rows, Stream), $"mp_xent_loss({rows})");
    }

    public void CrossEntropyBackward(Tensor dLogits, Tensor logits, Tensor rowMax, Tensor sumExp, Tensor targets,
        int rows, int cols, int vocabStart, double scale)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        ArgumentOutOfRangeException.ThrowIfNegative(vocabStart);
        if (!float.IsFinite((float)scale))
        {
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "scale must be finite");
        }
        var tl = Floating(logits, nameof(logits), (long)rows * cols, "rows x cols");
        var tdl = Like(dLogits, nameof(dLogits), tl, (long)rows * cols, "rows x cols");
        var tm = Arg(rowMax, nameof(rowMax), Stats, rows, "rows");
        var ts = Arg(sumExp, nameof(sumExp), Stats, rows, "rows");
        var tt = Arg(targets, nameof(targets), DType.Int32, rows, "rows");
        Begin();
        Native(MpNative.XentBwd(tdl.Pointer, tl.Pointer, tm.Pointer, ts.Pointer, tt.Pointer, rows, cols, vocabStart, (float)scale,
            NativeDType.Of(tl.DType), Stream), $"mp_xent_bwd({rows} x {cols})");
    }

    public void AdamW(Tensor master, Tensor? model, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2,
        float eps, float weightDecay, int step)
    {
        if (!(lr >= 0) || !float.IsFinite(lr))
        {
            throw new ArgumentOutOfRangeException(nameof(lr), lr, "the learning rate must be finite and not negative");
        }
        if (!(beta1 >= 0 && beta1 < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "beta1 must be in [0, 1)");
        }
        if (!(beta2 >= 0 && beta2 < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "beta2 must be in [0, 1)");
        }
        if (!(eps > 0) || !float.IsFinite(eps))
        {
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be positive and finite");
        }
        if (!(weightDecay >= 0) || !float.IsFinite(weightDecay))
        {
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "weight decay must be finite and not negative");
        }
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(step);
        var master32 = Arg(master, nameof(master), _backend.MasterType);
        long count = master32.Count;
        var tg = Arg(grad, nameof(grad), Grad, count, "master.Count");
        var tm = Arg(m, nameof(m), _backend.MasterType, count, "master.Count");
        var tv = Arg(v, nameof(v), _backend.MasterType, count, "master.Count");
        var tmodel = model is null ? null : Floating(model, nameof(model), count, "master.Count");
        if (count == 0)
        {
            return;
        }
        Begin();
        Native(MpNative.AdamWStep(master32.Pointer, Pointer(tmodel), tmodel is null ? NativeDType.Of(_backend.Compute)
                : NativeDType.Of(tmodel.DType), tg.Pointer, tm.Pointer, tv.Pointer, count, lr, beta1, beta2, eps, weightDecay,
            step, Stream), $"mp_adamw_step({count}, step {step})");
    }

    public void Add(Tensor y, Tensor a, Tensor b)
    {
        var ta = Floating(a, nameof(a));
        var tb = Like(b, nameof(b), ta, ta.Count, "a.Count");
        var ty = Like(y, nameof(y), ta, ta.Count, "a.Count");
        if (ta.Count == 0)
        {
            return;
        }
        Begin();
        Native(MpNative.Add(ty.Pointer, ta.Pointer, tb.Pointer, ta.Count, NativeDType.Of(ta.DType), Stream), $"mp_add({ta.Count})");
    }

    /// <summary>y = max(a, b) element by element (Float32 or BFloat16; a NaN in either input gives NaN); y may be a or b.
    /// Used by the reductions of <see cref="SameDeviceCommunicator"/>.</summary>
    internal void Max(Tensor y, Tensor a, Tensor b)
    {
        var ta = Floating(a, nameof(a));
        var tb = Like(b, nameof(b), ta, ta.Count, "a.Count");
        var ty = Like(y, nameof(y), ta, ta.Count, "a.Count");
        if (ta.Count == 0)
        {
            return;
        }
        Begin();
        Native(MpNative.ElementwiseMax(ty.Pointer, ta.Pointer, tb.Pointer, ta.Count, NativeDType.Of(ta.DType), Stream),
            $"mp_elementwise_max({ta.Count})");
    }

    public void Axpy(Tensor y, float alpha, Tensor x)
    {
        var tx = Floating(x, nameof(x));
        var ty = Floating(y, nameof(y), tx.Count, "x.Count");
        if (tx.Count == 0)
        {
            return;
        }
        Begin();
        Native(MpNative.Axpy(ty.Pointer, NativeDType.Of(ty.DType), alpha, tx.Pointer, NativeDType.Of(tx.DType), tx.Count, Stream),
            $"mp_axpy({tx.Count}, {tx.DType} into {ty.DType})");
    }

    public void AddBias(Tensor y, Tensor bias, int rows, int cols)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        var ty = Floating(y, nameof(y), (long)rows * cols, "rows x cols");
        var tb = Like(bias, nameof(bias), ty, cols, "cols");
        Begin();
        Native(MpNative.AddBias(ty.Pointer, tb.Pointer, rows, cols, NativeDType.Of(ty.DType), Stream),
            $"mp_add_bias({rows} x {cols})");
    }

    public void BiasGrad(Tensor dBias, Tensor dy, int rows, int cols)
    {
        Positive(rows, nameof(rows));
        Positive(cols, nameof(cols));
        var tdy = Floating(dy, nameof(dy), (long)rows * cols, "rows x cols");
        var tdb = Arg(dBias, nameof(dBias), Grad, cols, "cols");
        Begin();
        Native(MpNative.BiasGrad(tdb.Pointer, tdy.Pointer, rows, cols, NativeDType.Of(tdy.DType), Stream),
            $"mp_bias_grad({rows} x {cols})");
    }

    public void Fill(Tensor t, double value)
    {
        var tt = Arg(t, nameof(t));
        if (tt.DType == DType.Int32 && (value != Math.Floor(value) || value < int.MinValue || value > int.MaxValue))
        {
            throw new ArgumentOutOfRangeException(nameof(value), value, "an Int32 tensor can only be filled with a whole Int32");
        }
        if (tt.Count == 0)
        {
            return;
        }
        Begin();
        if (BitConverter.DoubleToInt64Bits(value) == 0)
        {
            Status.CheckCuda(CudaRuntime.MemsetAsync(tt.Pointer, 0, (nuint)tt.Bytes, Stream), $"cudaMemsetAsync({tt.Bytes} bytes)");
            return;
        }
        Native(MpNative.Fill(tt.Pointer, tt.Count, value, NativeDType.Of(tt.DType), Stream), $"mp_fill({tt.Count} x {tt.DType})");
    }

    public void Convert(Tensor dst, Tensor src)
    {
        var ts = Arg(src, nameof(src));
        var td = Arg(dst, nameof(dst), ts.Count, "src.Count");
        if (ts.Count == 0)
        {
            return;
        }
        Begin();
        if (td.DType == ts.DType)
        {
            Status.CheckCuda(CudaRuntime.MemcpyAsync(td.Pointer, ts.Pointer, (nuint)ts.Bytes, CudaRuntime.MemcpyDeviceToDevice,
                Stream), $"cudaMemcpyAsync(convert, {ts.Bytes} bytes)");
            return;
        }
        Native(MpNative.Convert(td.Pointer, NativeDType.Of(td.DType), ts.Pointer, NativeDType.Of(ts.DType), ts.Count, Stream),
            $"mp_convert({ts.Count}, {ts.DType} to {td.DType})");
    }

    public void Copy2D(Tensor dst, int dstStride, Tensor src, int srcStride, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if (dstStride < cols)
        {
            throw new ArgumentOutOfRangeException(nameof(dstStride), dstStride, $"the stride must be at least cols ({cols})");
        }
        if (srcStride < cols)
        {
            throw new ArgumentOutOfRangeException(nameof(srcStride), srcStride, $"the stride must be at least cols ({cols})");
        }
        var ts = Arg(src, nameof(src));
        var td = Arg(dst, nameof(dst), ts.DType);
        if (rows == 0 || cols == 0)
        {
            return;
        }
        long srcSpan = (long)(rows - 1) * srcStride + cols;
        long dstSpan = (long)(rows - 1) * dstStride + cols;
        if (ts.Count < srcSpan)
        {
            throw new ArgumentException($"src has {ts.Count} elements but {rows} rows of {cols} at stride {srcStride} need {srcSpan}",
                nameof(src));
        }
        if (td.Count < dstSpan)
        {
            throw new ArgumentException($"dst has {td.Count} elements but {rows} rows of {cols} at stride {dstStride} need {dstSpan}",
                nameof(dst));
        }
        int size = ts.DType.Size();
        Begin();
        Status.CheckCuda(CudaRuntime.Memcpy2DAsync(td.Pointer, (nuint)((long)dstStride * size), ts.Pointer,
                (nuint)((long)srcStride * size), (nuint)((long)cols * size), (nuint)rows, CudaRuntime.MemcpyDeviceToDevice, Stream),
            $"cudaMemcpy2DAsync({rows} x {cols}, strides {dstStride} <- {srcStride})");
    }

    private void Begin() => Device.MakeCurrent(_backend.Device);

    private static void Native(int code, string call) => Status.CheckNative(code, call);

    private static nint Pointer(CudaTensor? tensor) => tensor?.Pointer ?? 0;

    private static int NormCode(NormKind kind) => kind switch
    {
        NormKind.RmsNorm => 0,
        NormKind.LayerNorm => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown norm"),
    };

    private CudaTensor? NormBias(NormKind kind, Tensor? bias, string name, CudaTensor like, int cols)
    {
        if (bias is null)
        {
            return null;
        }
        if (kind == NormKind.RmsNorm)
        {
            throw new ArgumentException("RmsNorm has no bias, so bias must be null", name);
        }
        return Like(bias, name, like, cols, "cols");
    }

    private static (long Q, long Kv, long Lse) AttentionCounts(AttentionShape s) =>
        ((long)s.SeqLen * s.Batch * s.Heads * s.HeadDim, (long)s.SeqLen * s.Batch * s.KvHeads * s.HeadDim,
            (long)s.Batch * s.Heads * s.SeqLen);

    private static void Positive(int value, string name) => ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value, name);

    /// <summary>A CUDA tensor of this device.</summary>
    private CudaTensor Arg(Tensor? tensor, string name) => _backend.Require(tensor, name);

    /// <summary>A CUDA tensor of this device of <paramref name="count"/> elements.</summary>
    private CudaTensor Arg(Tensor? tensor, string name, long count, string shape)
    {
        var t = Arg(tensor, name);
        if (t.Count != count)
        {
            throw new ArgumentException($"{name} has {t.Count} elements but must have {shape} = {count}", name);
        }
        return t;
    }

    /// <summary>A CUDA tensor of this device in <paramref name="dtype"/>.</summary>
    private CudaTensor Arg(Tensor? tensor, string name, DType dtype)
    {
        var t = Arg(tensor, name);
        if (t.DType != dtype)
        {
            throw new ArgumentException($"{name} has dtype {t.DType} but must be {dtype}", name);
        }
        return t;
    }

    /// <summary>A CUDA tensor of this device in <paramref name="dtype"/> of <paramref name="count"/> elements.</summary>
    private CudaTensor Arg(Tensor? tensor, string name, DType dtype, long count, string shape)
    {
        var t = Arg(tensor, name, dtype);
        return Arg(t, name, count, shape);
    }

    /// <summary>A CUDA tensor of this device in a floating-point dtype.</summary>
    private CudaTensor Floating(Tensor? tensor, string name)
    {
        var t = Arg(tensor, name);
        if (!t.DType.IsFloatingPoint())
        {
            throw new ArgumentException($"{name} has dtype {t.DType} but must be floating-point", name);
        }
        return t;
    }

    private CudaTensor Floating(Tensor? tensor, string name, long count, string shape) =>
        Arg(Floating(tensor, name), name, count, shape);

    /// <summary>A CUDA tensor of this device with the dtype of <paramref name="like"/> and <paramref name="count"/> elements.</summary>
    private CudaTensor Like(Tensor? tensor, string name, CudaTensor like, long count, string shape) =>
        Arg(tensor, name, like.DType, count, shape);
}
