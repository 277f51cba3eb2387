using ModelParallel.Tests.Support;

namespace ModelParallel.Tests.Layers;

/// <summary><c>mp hf</c>: a Hugging Face folder loaded, reported and checked; malformed files end in one line and exit code 2.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class HfVerbTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mp-hf").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void ChecksAFixtureAgainstTransformers()
    {
        string folder = HfLlamaFixtureTests.Folder("tied-llama3");
        var (code, output, error) = Run(["hf", folder, "--backend", "cpu", "--tp", "2", "--sp", "--check", Path.Combine(folder, "reference.safetensors")]);
        Assert.True(code == 0, output + error);
        Assert.Contains("3 layers, hidden 48, heads 4 (key/value 1), head_dim 16", output, StringComparison.Ordinal);
        Assert.Contains("tied embeddings", output, StringComparison.Ordinal);
        Assert.Contains("rank 1: read ", output, StringComparison.Ordinal);
        Assert.Contains("gradient of model.layers.2.self_attn.k_proj.weight", output, StringComparison.Ordinal);
        Assert.Contains("top-1 agreement with float64: ours 100.00 %", output, StringComparison.Ordinal);
        Assert.Contains("ok: every error within 1.00E-12", output, StringComparison.Ordinal);
        Assert.Empty(error);
    }

    [Fact]
    public void ExportsAFolderThatReadsBackTheSame()
    {
        string folder = HfLlamaFixtureTests.Folder("gqa");
        string exported = Path.Combine(_dir, "export");
        var (code, output, error) = Run(["hf", folder, "--backend", "cpu", "--tp", "2", "--export", exported, "--dtype", "f64"]);
        Assert.True(code == 0, output + error);
        string reference = Path.Combine(folder, "reference.safetensors");
        (code, output, error) = Run(["hf", exported, "--backend", "cpu", "--check", reference]);
        Assert.True(code == 0, output + error);
        Assert.Contains("ok: every error within 1.00E-12", output, StringComparison.Ordinal);
    }

    [Fact]
    public void MalformedFilesEndInOneLineAndExitCode2()
    {
        string folder = Path.Combine(_dir, "model");
        Directory.CreateDirectory(folder);
        string source = HfLlamaFixtureTests.Folder("mha");
        File.Copy(Path.Combine(source, "config.json"), Path.Combine(folder, "config.json"));
        var bytes = File.ReadAllBytes(Path.Combine(source, "model.safetensors"));
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), bytes[..(bytes.Length / 2)]);
        var (code, output, error) = Run(["hf", folder, "--backend", "cpu"]);
        Assert.Equal(2, code);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Contains("model.safetensors", error, StringComparison.Ordinal);

        File.WriteAllText(Path.Combine(folder, "config.json"), "{\"model_type\": \"llama\", \"hidden_size\": 32, \"rope_scaling\": {\"rope_type\": \"yarn\"}}");
        (code, _, error) = Run(["hf", folder, "--backend", "cpu"]);
        Assert.Equal(2, code);
        Assert.Contains("'num_attention_heads' is missing", error, StringComparison.Ordinal);

        (code, _, error) = Run(["hf", Path.Combine(_dir, "nothing-here"), "--backend", "cpu"]);
        Assert.Equal(2, code);
        Assert.Contains("nothing-here", error, StringComparison.Ordinal);
        Assert.Single(error.Trim().Split('\n'));
    }

    private static (int Code, string Output, string Error) Run(string[] args) => MpRun.Run(args);
}
