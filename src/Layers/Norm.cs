using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>
/// RMSNorm or LayerNorm over the hidden dimension, optionally fused with the residual add before it:
/// sum = x + residual, y = norm(sum). The weight (and LayerNorm bias) are whole on every rank. With
/// sequence parallelism each rank normalises its token shard, so its parameter gradients are partial
/// sums that <see cref="ParallelLayerExtensions.FinalizeGradients"/> all-reduces over the tensor-parallel group.
/// </summary>
public sealed class Norm : IParallelLayer
{
    private readonly Parameter[] _parameters;
    private readonly TensorSlot _output;
    private readonly TensorSlot _sum;
    private readonly TensorSlot _stats;
    private readonly TensorSlot _inputGrad;
    private Tensor? _normalized;
    private Tensor? _savedStats;
    private bool _hasResidual;
    private int _rows;

    public Norm(ParallelContext context, string name, NormKind kind, int hiddenSize, double epsilon, bool sequenceParallel)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(hiddenSize);
        if (!(epsilon > 0) || !double.IsFinite(epsilon))
        {
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, $"{name}: epsilon must be positive");
        }
        Context = context;
        Name = name;
        Kind = kind;
        HiddenSize = hiddenSize;
        Epsilon = epsilon;
        Weight = Parameter.Create(context, $"{name}.weight", hiddenSize, 1, ParameterInit.Ones, _ => Shard.Whole(hiddenSize, 1));
        Bias = kind switch
        {
            NormKind.LayerNorm => Parameter.Create(context, $"{name}.bias", hiddenSize, 1, ParameterInit.Zeros, _ => Shard.Whole(hiddenSize, 1)),
            NormKind.RmsNorm => null,
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown norm kind"),
        };
        _parameters = Bias is null ? [Weight] : [Weight, Bias];
        if (sequenceParallel && context.TensorParallelSize > 1)
        {
            foreach (var p in _parameters)
            {
                p.ReduceGradientOver(context.TensorParallel, 0, hiddenSize);
            }
        }
        var backend = context.Backend;
        _output = new TensorSlot(backend);
        _sum = new TensorSlot(backend);
        _stats = new TensorSlot(backend);
        _inputGrad = new TensorSlot(backend);
    }

    public string Name { get; }

    public ParallelContext Context { get; }

    public IReadOnlyList<Parameter> Parameters => _parameters;

    public NormKind Kind { get; }

    public int HiddenSize { get; }

    public double Epsilon { get; }

    public Parameter Weight { get; }

    /// <summary>LayerNorm's bias; null for RMSNorm.</summary>
    public Parameter? Bias { get; }

    /// <summary>x + residual of the last forward with a residual (belongs to the layer).</summary>
    public Tensor Sum => _hasResidual ? _normalized! : throw new InvalidOperationException($"{Name}: the last forward had no residual");

    /// <summary>
    /// y = norm(x + residual) (norm(x) without residual) over <paramref name="rows"/> rows of the hidden size.
    /// The output belongs to the layer; x and residual must stay unchanged until backward.
    /// </summary>
    public Tensor Forward(Tensor input, Tensor? residual, int rows)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        var backend = Context.Backend;
        Check.Matrix(input, backend.Compute, rows, HiddenSize, Name, "input");
        if (residual is not null)
        {
            Check.Matrix(residual, backend.Compute, rows, HiddenSize, Name, "residual");
        }
        var y = _output.Get(backend.Compute, input.Count);
        var sum = residual is null ? null : _sum.Get(backend.Compute, input.Count);
        var stats = _stats.Get(backend.StatsType, 2L * rows);
        Context.Kernels.NormForward(Kind, y, sum, stats, input, residual, Weight.Value, Bias?.Value, rows, HiddenSize, Epsilon);
        _normalized = sum ?? input;
        _savedStats = stats;
        _hasResidual = residual is not null;
        _rows = rows;
        return y;
    }

    /// <summary>
    /// The gradient of the normalised input (x + residual, which is also that of x and of the residual), plus
    /// <paramref name="residualGrad"/>, the gradient arriving on the residual path when given. Accumulates the
    /// weight (and bias) gradients. The result belongs to the layer. There is no split of this backward: the kernel
    /// computes the weight (and bias) gradients together with dx in one pass over the rows, so a deferred backward of
    /// the layers around a norm (<see cref="TransformerLayer"/>, <see cref="GptModel"/>) accumulates them in its
    /// input-gradient part.
    /// </summary>
    public Tensor Backward(Tensor outputGrad, Tensor? residualGrad)
    {
        Check.ForwardDone(_normalized is not null, Name);
        var backend = Context.Backend;
        Check.Matrix(outputGrad, backend.Compute, _rows, HiddenSize, Name, "output gradient");
        if (residualGrad is not null)
        {
            Check.Matrix(residualGrad, backend.Compute, _rows, HiddenSize, Name, "residual gradient");
        }
        var dx = _inputGrad.Get(backend.Compute, outputGrad.Count);
        Context.Kernels.NormBackward(Kind, dx, Weight.Grad, Bias?.Grad, outputGrad, residualGrad, _normalized!, Weight.Value,
            _savedStats!, _rows, HiddenSize);
        return dx;
    }

    public void Dispose()
    {
        foreach (var p in _parameters)
        {
            p.Dispose();
        }
        _output.Dispose();
        _sum.Dispose();
        _stats.Dispose();
        _inputGrad.Dispose();
    }
}
