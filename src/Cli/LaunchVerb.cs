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

    public string Name => "launch";

    public string Summary =>
        "run N ranks of a program: launch --nproc-per-node N [--master-addr A] [--master-port P] [--nnodes M --node-rank K] -- PROGRAM ARGS";

    public int Run(string[] args)
    {
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

    /// <summary>Parses and validates the arguments; <see cref="ArgumentException"/> names the bad one.</summary>
    public static LaunchOptions Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var values = new Dictionary<string, string>();
        int next = 0;
        while (next < args.Count && args[next].StartsWith("--", StringComparison.Ordinal))
        {
            string option = args[next++];
            if (option == "--")
            {
                break;
            }
            if (!Options.Contains(option))
            {
                throw new ArgumentException($"unknown option '{option}' (known: {string.Join(", ", Options)})");
            }
            if (next == args.Count)
            {
                throw new ArgumentException($"option {option} needs a value");
            }
            if (!values.TryAdd(option, args[next++]))
            {
                throw new ArgumentException($"option {option} is given twice");
            }
        }
        if (next == args.Count)
        {
            throw new ArgumentException("the PROGRAM to launch is missing (mp launch --nproc-per-node N -- PROGRAM ARGS)");
        }
        if (!values.ContainsKey(NprocPerNode))
        {
            throw new ArgumentException($"option {NprocPerNode} is required");
        }
        var options = new LaunchOptions(Integer(values, NprocPerNode), args[next], args.Skip(next + 1).ToArray())
        {
            Nnodes = values.ContainsKey(Nnodes) ? Integer(values, Nnodes) : 1,
            NodeRank = values.ContainsKey(NodeRank) ? Integer(values, NodeRank) : 0,
            MasterAddr = values.GetValueOrDefault(MasterAddr),
            MasterPort = values.ContainsKey(MasterPort) ? Integer(values, MasterPort) : null,
        };
        options.Validate();
        return options;
    }

    private static int Integer(Dictionary<string, string> values, string option)
    {
        string value = values[option];
        return int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int parsed)
            ? parsed
            : throw new ArgumentException($"option {option} '{value}' is not an integer");
    }
}
