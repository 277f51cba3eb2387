using System.Diagnostics;
using ModelParallel.Cli;

namespace ModelParallel.Tests.Gpu;

/// <summary>One process per GPU, started by <c>mp launch</c>, each running <c>mp nccl-check</c>: every collective
/// through NCCL's multi-process path (unique id shared by the TCP rendezvous).</summary>
[Trait("Category", GpuRequirement.Category)]
[Collection(GpuCollection.Name)]
public class NcclLaunchTests
{
    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public async Task EveryCollectiveChecksOutWithOneProcessPerGpu(int gpus)
    {
        GpuRequirement.Require(gpus);
        Assert.True(Verbs.Find("launch") is not null, "mp has no launch verb in this build");
        string mp = Path.Combine(AppContext.BaseDirectory, "mp.dll");
        string dotnet = DotnetHost();
        var start = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { mp, "launch", "--nproc-per-node", gpus.ToString(), "--", dotnet, mp, "nccl-check" })
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(5));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"mp launch of {gpus} nccl-check processes did not finish in 5 minutes");
        }
        string output = await stdout + await stderr;
        TestContext.Current.TestOutputHelper?.WriteLine(output);
        Assert.True(process.ExitCode == 0, $"mp launch exited with {process.ExitCode}:\n{output}");
        for (int rank = 0; rank < gpus; rank++)
        {
            Assert.Contains($"nccl-check rank {rank}: every collective ok", output);
        }
    }

    private static string DotnetHost()
    {
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host))
        {
            return host;
        }
        string? process = Environment.ProcessPath;
        return process is not null && Path.GetFileNameWithoutExtension(process) == "dotnet" ? process : "dotnet";
    }
}
