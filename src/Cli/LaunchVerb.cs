using System.Globalization;
using System.Runtime.InteropServices;
using ModelParallel.Runtime.Launch;

namespace ModelParallel.Cli;

/// <summary>
/// <c>mp launch --nproc-per-node N [--master-addr A] [--master-port P] [--nnodes M --node-rank K] [--] PROGRAM [ARGS]</c>:
/// runs N processes of PROGRAM with the torchrun variables (see <see cref="Launcher"/>). Options come first;
/// <c>--</c> ends them, otherwise the first argument that is not an option starts PROGRAM.
/// Ctrl+C (SIGINT) and SIGTERM stop the children.
/// </summary>
public sealed class LaunchVerb : IVerb
{
    private const string NprocPerNode = "--nproc-per-node";
    private const string MasterAddr = "--master-addr";
    private const string MasterPort = "--master-port";
    private const string Nnodes = "--nnodes";
    private const string NodeRank = "--node-rank";
    private static readonly string[] Options = [NprocPerNode, MasterAddr, MasterPort, Nnodes, NodeRank];

    private const string Help =
        "usage: mp launch --nproc-per-node N [--master-addr A] [--master-port P] [--nnodes M --node-rank K] [--] PROGRAM [ARGS]";

    public string Name => "launch";

    public string Summary =>
        "run N ranks of a program: launch --nproc-per-node N [--master-addr A] [--master-port P] [--nnodes M --node-rank K] -- PROGRAM ARGS";

    public int Run(string[] args)
    {
        if (IsHelp(args))
        {
            Console.WriteLine(Help);
            return 0;
        }
        var options = Parse(args);
        using var interrupt = new CancellationTokenSource();
        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            interrupt.Cancel();
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        return Launcher.Run(options, Console.Out, interrupt.Token);
    }

    /// <summary>Whether <c>--help</c> or <c>-h</c> is among the options before PROGRAM (PROGRAM's own are its own).</summary>
    public static bool IsHelp(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        for (int i = 0; i < args.Count; i++)
        {
            if (args[i] is "--help" or "-h")
            {
                return true;
            }
            if (args[i] == "--" || !args[i].StartsWith("--", StringComparison.Ordinal))
            {
                return false;
            }
            if (i + 1 < args.Count && !args[i + 1].StartsWith('-'))
            {
                i++; // the option's value
            }
        }
        return false;
    }

    /// <summary>Parses and validates the arguments; <see cref="ArgumentException"/> names the bad one.</summary>
    public static LaunchOptions Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var line = CommandLine.ParseBeforeProgram(args);
        string? nprocPerNode = line.String(NprocPerNode), masterAddr = line.String(MasterAddr), masterPort = line.String(MasterPort),
            nnodes = line.String(Nnodes), nodeRank = line.String(NodeRank);
        line.RejectUnknown(option => $"unknown option '{option}' (known: {string.Join(", ", Options)})");
        if (line.Program.Count == 0)
        {
            throw new ArgumentException("the PROGRAM to launch is missing (mp launch --nproc-per-node N -- PROGRAM ARGS)");
        }
        var options = new LaunchOptions(
            Integer(NprocPerNode, nprocPerNode ?? throw new ArgumentException($"option {NprocPerNode} is required")),
            line.Program[0], line.Program.Skip(1).ToArray())
        {
            Nnodes = nnodes is null ? 1 : Integer(Nnodes, nnodes),
            NodeRank = nodeRank is null ? 0 : Integer(NodeRank, nodeRank),
            MasterAddr = masterAddr,
            MasterPort = masterPort is null ? null : Integer(MasterPort, masterPort),
        };
        options.Validate();
        return options;
    }

    /// <summary>The option's value as an integer; a bad one is named in the form of this verb's other messages (option NAME ...).</summary>
    private static int Integer(string option, string value) =>
        int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int parsed)
            ? parsed
            : throw new ArgumentException($"option {option} '{value}' is not an integer");
}
