using ModelParallel.Runtime.Cuda;

namespace ModelParallel.Tests.Gpu;

/// <summary>Skips a GPU test, saying why, where fewer GPUs than it needs can be used.</summary>
public static class GpuRequirement
{
    public const string Category = "Gpu";

    /// <summary>Skips the running test unless at least <paramref name="gpus"/> CUDA devices can be used.</summary>
    public static void Require(int gpus = 1)
    {
        if (!CudaBackend.TryGetDeviceCount(out int count, out string reason))
        {
            Assert.Skip($"needs {gpus} GPU{(gpus == 1 ? "" : "s")}, and CUDA cannot be used here: {reason}");
        }
        if (count < gpus)
        {
            Assert.Skip($"needs {gpus} GPUs, {count} present");
        }
    }
}

/// <summary>GPU tests run one at a time: they share the devices.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GpuCollection
{
    public const string Name = "Gpu";
}
