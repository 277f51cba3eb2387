using ModelParallel.Runtime;

namespace ModelParallel.Layers;

/// <summary>Fills <paramref name="destination"/> with row <paramref name="fullRow"/> of a full weight, from column
/// <paramref name="firstColumn"/> on.</summary>
public delegate void RowReader(int fullRow, int firstColumn, Span<double> destination);

/// <summary>
/// One weight of a layer: this rank's shard of a full [Rows, Columns] weight (in the compute dtype) and
/// its gradient (in the grad dtype), which backward accumulates into until <see cref="ZeroGrad"/>.
/// The full weight starts as <see cref="MasterInit"/> generates it from (context seed, <see cref="Name"/>).
/// </summary>
public sealed class Parameter : IDisposable
{
    private readonly ParallelContext _context;
    private readonly Shard[] _shards;
    private int _references = 1;

    /// <summary>
    /// The parameter <paramref name="name"/> of a layer being built: a new one, or, inside
    /// <see cref="ParallelContext.ShareParameters"/>, the existing one of that name (same shape), shared.
    /// </summary>
    internal static Parameter Create(ParallelContext context, string name, int rows, int cols, ParameterInit init, Func<int, Shard> shardOfRank)
    {
        var shared = context.SharedParameter(name);
        if (shared is null)
        {
            return new Parameter(context, name, rows, cols, init, shardOfRank);
        }
        if (shared.Rows != rows || shared.Columns != cols)
        {
            throw new ArgumentException($"{name}: the shared parameter is [{shared.Rows}, {shared.Columns}]; the layer needs [{rows}, {cols}]");
        }
        shared._references++;
        return shared;
    }

    private Parameter(ParallelContext context, string name, int rows, int cols, ParameterInit init, Func<int, Shard> shardOfRank)
    {
        _context = context;
        Name = name;
        Rows = rows;
        Columns = cols;
        _shards = Enumerable.Range(0, context.TensorParallelSize).Select(shardOfRank).ToArray();
        var local = _shards[context.TensorParallelRank];
        IsSharded = !_shards.All(s => s.IsWhole(rows, cols));
        var backend = context.Backend;
        Value = backend.Allocate(backend.Compute, local.Count);
        try
        {
            Grad = backend.Allocate(backend.GradType, local.Count);
            Load(MasterInit.Generate(context.Seed, name, init, (long)rows * cols));
            ZeroGrad();
        }
        catch
        {
            Value.Dispose();
            Grad?.Dispose();
            throw;
        }
    }

    /// <summary>Dotted path, e.g. "decoder.layers.0.self_attention.linear_qkv.weight".</summary>
    public string Name { get; }

    /// <summary>Rows of the full weight.</summary>
    public int Rows { get; }

    /// <summary>Columns of the full weight (1 for vectors).</summary>
    public int Columns { get; }

    /// <summary>Elements of the full weight.</summary>
    public long FullCount => (long)Rows * Columns;

    /// <summary>Elements this rank holds.</summary>
    public long LocalCount => Value.Count;

    /// <summary>Whether the ranks of the tensor-parallel group hold different parts (else each holds all of it).</summary>
    public bool IsSharded { get; }

    /// <summary>This rank's shard, compute dtype.</summary>
    public Tensor Value { get; }

    /// <summary>Gradient of this rank's shard, grad dtype.</summary>
    public Tensor Grad { get; }

    internal GradientReduction? Reduction { get; private set; }

    /// <summary>Sets this rank's shard from the full weight (row-major, <see cref="FullCount"/> elements).</summary>
    public void Load(ReadOnlySpan<double> full)
    {
        if (full.Length != FullCount)
        {
            throw new ArgumentException($"{Name}: full weight has {full.Length} elements; expected {Rows} x {Columns} = {FullCount}", nameof(full));
        }
        var local = new double[LocalCount];
        _shards[_context.TensorParallelRank].Extract(full, Columns, local);
        _context.Backend.Upload(Value, local);
    }

    /// <summary>
    /// Sets this rank's shard by reading only its part of the full weight: <paramref name="readRow"/> fills its
    /// destination with row fullRow of the full weight, columns [firstColumn, firstColumn + destination.Length).
    /// </summary>
    public void LoadRows(RowReader readRow)
    {
        ArgumentNullException.ThrowIfNull(readRow);
        var shard = _shards[_context.TensorParallelRank];
        var local = new double[LocalCount];
        for (int i = 0; i < shard.Rows.Length; i++)
        {
            readRow(shard.Rows[i], shard.ColumnStart, local.AsSpan(checked(i * shard.Columns), shard.Columns));
        }
        _context.Backend.Upload(Value, local);
    }

    /// <summary>The full weight. A collective over the tensor-parallel group when the parameter is sharded.</summary>
    public double[] Save() => Gather(Value);

    /// <summary>The full gradient, assembled like <see cref="Save"/>. Complete once gradients are finalized
    /// (<see cref="ParallelLayerExtensions.FinalizeGradients"/>) where several ranks hold partial sums.</summary>
    public double[] SaveGrad() => Gather(Grad);

    public void ZeroGrad() => _context.Kernels.Fill(Grad, 0);

    /// <summary>Marks elements of the local gradient as partial sums over <paramref name="group"/>.</summary>
    internal void ReduceGradientOver(ICommunicator group, long offset, long count)
    {
        if (offset < 0 || count <= 0 || offset + count > LocalCount)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"{Name}: [{offset}, {offset + count}) is outside {LocalCount} elements");
        }
        Reduction = new GradientReduction(group, offset, count);
    }

    private double[] Gather(Tensor local)
    {
        var backend = _context.Backend;
        var full = new double[FullCount];
        if (!IsSharded)
        {
            backend.Download(local, full);
            return full;
        }
        int size = _context.TensorParallelSize;
        using var gathered = backend.Allocate(local.DType, local.Count * size);
        _context.TensorParallel.AllGather(local, gathered);
        var host = new double[gathered.Count];
        backend.Download(gathered, host);
        for (int r = 0; r < size; r++)
        {
            _shards[r].Insert(host.AsSpan((int)(r * local.Count), (int)local.Count), Columns, full);
        }
        return full;
    }

    /// <summary>Frees the weight and gradient when the last layer sharing them lets go.</summary>
    public void Dispose()
    {
        if (_references == 0 || --_references > 0)
        {
            return;
        }
        Value.Dispose();
        Grad.Dispose();
    }
}
