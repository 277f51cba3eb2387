using System.Numerics;

namespace ModelParallel.Runtime.Cpu;

public sealed partial class CpuKernels
{
    public void AdamW(Tensor master, Tensor? model, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2,
        float eps, float weightDecay, int step)
    {
        var mt = CheckDType(master, nameof(master), _backend.MasterType);
        string formula = "master's count";
        var gt = Check(grad, nameof(grad), mt.Count, formula, _backend.GradType);
        var m1 = Check(m, nameof(m), mt.Count, formula, _backend.MasterType);
        var m2 = Check(v, nameof(v), mt.Count, formula, _backend.MasterType);
        CpuTensor? modelT = null;
        if (model is not null)
        {
            modelT = _backend.Own(model, nameof(model));
            if (!modelT.DType.IsFloatingPoint())
            {
                throw new ArgumentException($"model is {modelT.DType} but must be a floating-point tensor", nameof(model));
            }
            Check(model, nameof(model), mt.Count, formula, modelT.DType);
        }
        if (!(lr >= 0f) || float.IsInfinity(lr))
        {
            throw new ArgumentOutOfRangeException(nameof(lr), lr, "learning rate must be finite and not negative");
        }
        if (!(beta1 >= 0f && beta1 < 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "beta1 must be in [0, 1)");
        }
        if (!(beta2 >= 0f && beta2 < 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "beta2 must be in [0, 1)");
        }
        if (!(eps >= 0f) || float.IsInfinity(eps))
        {
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be finite and not negative");
        }
        if (!(weightDecay >= 0f) || float.IsInfinity(weightDecay))
        {
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "weight decay must be finite and not negative");
        }
        if (step < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(step), step, "steps are counted from 1");
        }
        var hyper = new AdamWStep(lr, beta1, beta2, eps, weightDecay, step);
        if (IsDouble)
        {
            AdamW<double>(mt, modelT, gt, m1, m2, hyper);
        }
        else
        {
            AdamW<float>(mt, modelT, gt, m1, m2, hyper);
        }
    }

    private readonly record struct AdamWStep(float Lr, float Beta1, float Beta2, float Eps, float WeightDecay, int Step);

    /// <summary>m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; w -= lr (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd w).</summary>
    private static void AdamW<T>(CpuTensor master, CpuTensor? model, CpuTensor grad, CpuTensor m, CpuTensor v, AdamWStep h)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T lr = T.CreateChecked(h.Lr), b1 = T.CreateChecked(h.Beta1), b2 = T.CreateChecked(h.Beta2);
        T eps = T.CreateChecked(h.Eps), wd = T.CreateChecked(h.WeightDecay);
        T correction1 = T.CreateChecked(1 - Math.Pow(h.Beta1, h.Step));
        T correction2 = T.CreateChecked(1 - Math.Pow(h.Beta2, h.Step));
        For(master.Length, 16, (start, end) =>
        {
            Span<T> w = master.Span<T>(), g = grad.Span<T>(), ms = m.Span<T>(), vs = v.Span<T>();
            for (int i = start; i < end; i++)
            {
                ms[i] = b1 * ms[i] + (T.One - b1) * g[i];
                vs[i] = b2 * vs[i] + (T.One - b2) * g[i] * g[i];
                T update = ms[i] / correction1 / (T.Sqrt(vs[i] / correction2) + eps);
                w[i] -= lr * (update + wd * w[i]);
            }
            switch (model?.DType)
            {
                case DType.Float32:
                    ConvertRange<T, float>(w, model.Span<float>(), start, end);
                    break;
                case DType.Float64:
                    ConvertRange<T, double>(w, model.Span<double>(), start, end);
                    break;
            }
        });
    }

    private static void ConvertRange<TFrom, TTo>(ReadOnlySpan<TFrom> source, Span<TTo> destination, int start, int end)
        where TFrom : INumberBase<TFrom>
        where TTo : INumberBase<TTo>
    {
        for (int i = start; i < end; i++)
        {
            destination[i] = TTo.CreateTruncating(source[i]);
        }
    }
}
