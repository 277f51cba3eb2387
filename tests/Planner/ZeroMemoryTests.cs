using System.Text.Json;
using ModelParallel.Planner;

namespace ModelParallel.Tests.Planner;

/// <summary>The ZeRO paper's Figure 1 (Rajbhandari et al. 2020): 7.5e9 parameters, DP 64, mixed-precision Adam.</summary>
public sealed class ZeroMemoryTests
{
    private static readonly double[] Figure1Gb = [120, 31.4, 16.6, 1.9];

    [Fact]
    public void ApiReproducesFigure1()
    {
        var table = ZeroTable.Compute(7.5e9, 64);
        Assert.Equal(4, table.Stages.Count);
        for (var stage = 0; stage < 4; stage++)
        {
            Assert.Equal(Figure1Gb[stage], Math.Round(table.Stages[stage].TotalBytes / 1e9, 1));
        }
    }

    [Fact]
    public void StagesShardTheirPartsByDp()
    {
        var psi = 1e9 * (1 + Random.Shared.NextDouble() * 100);
        var dp = Random.Shared.Next(2, 1025);
        var table = ZeroTable.Compute(psi, dp);
        double[][] expected =
        [
            [2 * psi, 2 * psi, 12 * psi],
            [2 * psi, 2 * psi, 12 * psi / dp],
            [2 * psi, 2 * psi / dp, 12 * psi / dp],
            [2 * psi / dp, 2 * psi / dp, 12 * psi / dp],
        ];
        for (var stage = 0; stage < 4; stage++)
        {
            Assert.Equal(expected[stage], table.Stages[stage].Terms.Select(t => t.Value), new RelativeComparer(1e-12));
        }
    }

    [Fact]
    public void Fp32AndSgdChangeTheBytesPerParameter()
    {
        var psi = 1e9 * (1 + Random.Shared.NextDouble());
        Assert.Equal(16 * psi, ZeroTable.Compute(psi, 8, Precision.Fp32).Stages[0].TotalBytes, new RelativeComparer(1e-12));
        Assert.Equal(12 * psi, ZeroTable.Compute(psi, 8, Precision.Fp32, OptimizerKind.Sgd).Stages[0].TotalBytes, new RelativeComparer(1e-12));
        Assert.Equal(12 * psi, ZeroTable.Compute(psi, 8, Precision.Bf16, OptimizerKind.Sgd).Stages[0].TotalBytes, new RelativeComparer(1e-12));
        Assert.Equal(18 * psi, ZeroTable.Compute(psi, 8, fp32Gradients: true).Stages[0].TotalBytes, new RelativeComparer(1e-12));
        Assert.Equal((2 + 4 + 12.0 / 8) * psi, ZeroTable.Compute(psi, 8, fp32Gradients: true).Stages[1].TotalBytes, new RelativeComparer(1e-12));
    }

    [Fact]
    public void CliPrintsFigure1WithItsFormulas()
    {
        var (rc, text) = MpCli.Run("plan", "memory", "--params", "7.5e9", "--dp", "64");
        Assert.Equal(0, rc);
        Assert.Contains("ZeRO stage 0: (2 + 2 + 12) B x 7.5e9 = 120.0 GB per GPU", text);
        Assert.Contains("ZeRO stage 1: (2 + 2 + 12/64) B x 7.5e9 = 31.4 GB per GPU", text);
        Assert.Contains("ZeRO stage 2: (2 + 2/64 + 12/64) B x 7.5e9 = 16.6 GB per GPU", text);
        Assert.Contains("ZeRO stage 3: (2/64 + 2/64 + 12/64) B x 7.5e9 = 1.9 GB per GPU", text);
        Assert.Matches(@"parameters\s+15\.0 GB\s+2 B x 7\.5e9", text);
        Assert.Matches(@"optimizer states\s+1\.4 GB\s+12 B x 7\.5e9 / DP 64", text);
    }

    [Fact]
    public void CliWritesFigure1AsJson()
    {
        var (rc, text) = MpCli.Run("plan", "memory", "--params", "7.5e9", "--dp", "64", "--json");
        Assert.Equal(0, rc);
        using var json = JsonDocument.Parse(text);
        var totals = json.RootElement.GetProperty("stages").EnumerateArray().Select(s => s.GetProperty("totalBytes").GetDouble() / 1e9);
        Assert.Equal(Figure1Gb, totals.Select(gb => Math.Round(gb, 1)));
    }

    [Fact]
    public void RejectsNonPositiveInputs()
    {
        Assert.Contains("DP must be positive (got 0)", Assert.Throws<ArgumentException>(() => ZeroTable.Compute(7.5e9, 0)).Message);
        Assert.Contains("parameters must be positive", Assert.Throws<ArgumentException>(() => ZeroTable.Compute(-1, 64)).Message);
    }
}
