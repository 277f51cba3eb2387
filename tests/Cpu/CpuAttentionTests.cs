using ModelParallel.Runtime;
using ModelParallel.Runtime.Cpu;
using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Cpu;

/// <summary>Attention forward against naive softmax attention; backward against finite differences of it.</summary>
public sealed class CpuAttentionTests
{
    public static TheoryData<DType, bool, int, int> Cases()
    {
        var data = new TheoryData<DType, bool, int, int>();
        foreach (var dtype in new[] { DType.Float32, DType.Float64 })
        {
            foreach (bool causal in new[] { false, true })
            {
                data.Add(dtype, causal, 3, 3);
                data.Add(dtype, causal, 4, 2);
                data.Add(dtype, causal, 4, 1);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Attention_ForwardAndBackward_MatchReference(DType dtype, bool causal, int heads, int kvHeads)
    {
        var rng = TestRandom.Create();
        var shape = new AttentionShape(Batch: 2, SeqLen: 5, Heads: heads, KvHeads: kvHeads, HeadDim: 6, Causal: causal);
        int qCount = shape.SeqLen * shape.Batch * heads * shape.HeadDim;
        int kvCount = shape.SeqLen * shape.Batch * kvHeads * shape.HeadDim;
        var q = CpuTestKit.Random(rng, dtype, qCount, 2);
        var k = CpuTestKit.Random(rng, dtype, kvCount, 2);
        var v = CpuTestKit.Random(rng, dtype, kvCount);
        var dO = CpuTestKit.Random(rng, dtype, qCount);
        var (expectedO, expectedLse) = CpuReference.Attention(q, k, v, shape);

        using var backend = new CpuBackend(dtype);
        var qt = TestTensors.Upload(backend, q);
        var kt = TestTensors.Upload(backend, k);
        var vt = TestTensors.Upload(backend, v);
        var ot = TestTensors.Poisoned(backend, qCount);
        var lset = TestTensors.Poisoned(backend, shape.Batch * heads * shape.SeqLen);
        backend.Kernels.AttentionForward(ot, lset, qt, kt, vt, shape);
        double tol = CpuTestKit.Tolerance(dtype);
        Numerics.AssertClose(TestTensors.Download(ot), expectedO, tol, $"O of {shape}");
        Numerics.AssertClose(TestTensors.Download(lset), expectedLse, tol, $"LSE of {shape}");

        var dqt = TestTensors.Poisoned(backend, qCount);
        var dkt = TestTensors.Poisoned(backend, kvCount);
        var dvt = TestTensors.Poisoned(backend, kvCount);
        backend.Kernels.AttentionBackward(dqt, dkt, dvt, TestTensors.Upload(backend, dO), qt, kt, vt, ot, lset, shape);

        // The gradients of L = sum(dO .* O(q, k, v)).
        var dq = FiniteDifference.Gradient(x => CpuReference.Dot(dO, CpuReference.Attention(x, k, v, shape).O), q);
        var dk = FiniteDifference.Gradient(x => CpuReference.Dot(dO, CpuReference.Attention(q, x, v, shape).O), k);
        var dv = FiniteDifference.Gradient(x => CpuReference.Dot(dO, CpuReference.Attention(q, k, x, shape).O), v);
        double gradTol = CpuTestKit.GradientTolerance(dtype);
        Numerics.AssertClose(TestTensors.Download(dqt), dq, gradTol, $"dQ of {shape}");
        Numerics.AssertClose(TestTensors.Download(dkt), dk, gradTol, $"dK of {shape}");
        Numerics.AssertClose(TestTensors.Download(dvt), dv, gradTol, $"dV of {shape}");
    }

    [Fact]
    public void Attention_BadSizes_ThrowNamingThem()
    {
        using var backend = new CpuBackend(DType.Float32);
        var shape = new AttentionShape(1, 4, 2, 2, 8, true);
        var t = backend.Allocate(DType.Float32, 64);
        var lse = backend.Allocate(DType.Float32, 8);
        var shortK = backend.Allocate(DType.Float32, 60);
        var error = Assert.Throws<ArgumentException>(() => backend.Kernels.AttentionForward(t, lse, t, shortK, t, shape));
        Assert.Equal("k", error.ParamName);
        Assert.Contains("60", error.Message);
        Assert.Contains("64", error.Message);
        Assert.Contains("kvHeads 2",
            Assert.Throws<ArgumentException>(() => backend.Kernels.AttentionForward(t, lse, t, t, t, shape with { Heads = 3 })).Message);
        Assert.Throws<ArgumentException>(() => backend.Kernels.AttentionForward(t, lse, t, t, t, shape with { HeadDim = 0 }));
    }
}
