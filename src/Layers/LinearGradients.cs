using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// The weight-gradient GEMM shared by the linear layers: the part of their backward that a split backward
/// (<c>Backward(dy, deferWeightGradients: true)</c>, then <c>BackwardWeights()</c>) runs later.
/// </summary>
internal static class LinearGradients
{
    /// <summary>
    /// weight.Grad[outRows, inCols] += dY^T X, with dY [tokens, outRows] and X [tokens, inCols]; when there is a
    /// bias, the same GEMM yields its gradient (the column sums of dY) into <paramref name="biasScratch"/>, which
    /// is then added to bias.Grad.
    /// </summary>
    public static void Accumulate(ParallelContext context, Parameter weight, Parameter? bias, TensorSlot biasScratch,
        Tensor outputGrad, Tensor input, int tokens, int outRows, int inCols)
    {
        var kernels = context.Kernels;
        if (bias is null)
        {
            kernels.Gemm(weight.Grad, outputGrad, input, outRows, inCols, tokens, transA: true, transB: false, beta: 1f);
            return;
        }
        var biasGrad = biasScratch.Get(context.Backend.GradType, outRows);
        kernels.Gemm(weight.Grad, outputGrad, input, outRows, inCols, tokens, transA: true, transB: false, beta: 1f,
            epilogue: GemmEpilogue.BiasGradA, biasGrad: biasGrad);
        kernels.Axpy(bias.Grad, 1f, biasGrad);
    }
}
