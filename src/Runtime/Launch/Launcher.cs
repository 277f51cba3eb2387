using System.ComponentModel;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ModelParallel.Runtime.Launch;

/// <summary>
/// Starts one process per local rank with the torchrun variables (<see cref="LaunchEnvironment"/>), copies
/// every line the children write to stdout and stderr to one writer prefixed "[rank K] ", and when a child
/// exits with a non-zero code stops the others (each with its whole process tree).
/// </summary>
public static class Launcher
{
    /// <summary>Exit code of <see cref="Run"/> when a rank failed.</summary>
    public const int FailedExitCode = 1;

    /// <summary>Exit code of <see cref="Run"/> when it was cancelled (128 + SIGINT, as a shell reports Ctrl+C).</summary>
    public const int InterruptedExitCode = 130;

    private const string DefaultMasterAddr = "127.0.0.1";

    /// <summary>
    /// Runs the ranks of <paramref name="options"/> until all exit. Returns 0 when all exit with 0;
    /// <see cref="FailedExitCode"/> when one fails, after stopping the others and writing
    /// "mp launch: rank K exited with code C; stopped ranks ..."; <see cref="InterruptedExitCode"/> when
    /// <paramref name="cancellationToken"/> is cancelled, after stopping all. A program that cannot be
    /// started throws <see cref="InvalidOperationException"/> naming it.
    /// </summary>
    public static int Run(LaunchOptions options, TextWriter output, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        options.Validate();
        string masterAddr = options.MasterAddr ?? DefaultMasterAddr;
        int masterPort = options.MasterPort ?? FindFreePort();
        int worldSize = options.Nnodes * options.NprocPerNode;
        var outputLock = new object();
        var children = new List<(int Rank, Process Process)>();
        try
        {
            for (int localRank = 0; localRank < options.NprocPerNode; localRank++)
            {
                var env = new LaunchEnvironment(
                    options.NodeRank * options.NprocPerNode + localRank, worldSize, localRank, options.NprocPerNode, masterAddr, masterPort);
                children.Add((env.Rank, Start(options, env, output, outputLock)));
            }
            return Supervise(children, output, outputLock, cancellationToken);
        }
        catch (Win32Exception e)
        {
            Stop(children);
            throw new InvalidOperationException($"cannot start '{options.Program}': {e.Message}", e);
        }
        finally
        {
            foreach (var (_, process) in children)
            {
                process.Dispose();
            }
        }
    }

    /// <summary>A TCP port that is free on every interface of this machine now (the default master port).</summary>
    public static int FindFreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Any, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private static Process Start(LaunchOptions options, LaunchEnvironment env, TextWriter output, object outputLock)
    {
        var startInfo = new ProcessStartInfo(options.Program)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string argument in options.Arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }
        foreach (var (name, value) in env.ToVariables())
        {
            startInfo.Environment[name] = value;
        }
        var process = new Process { StartInfo = startInfo };
        string prefix = $"[rank {env.Rank}] ";
        DataReceivedEventHandler copy = (_, line) =>
        {
            if (line.Data is not null)
            {
                lock (outputLock)
                {
                    output.WriteLine(prefix + line.Data);
                }
            }
        };
        process.OutputDataReceived += copy;
        process.ErrorDataReceived += copy;
        try
        {
            process.Start();
        }
        catch
        {
            process.Dispose();
            throw;
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Waits for the children in the order they exit; stops the rest at the first failure or on cancellation.</summary>
    private static int Supervise(List<(int Rank, Process Process)> children, TextWriter output, object outputLock, CancellationToken cancellationToken)
    {
        // WaitForExitAsync completes once the process exited and its output was read to the end.
        var running = children.Select(c => (c.Rank, c.Process, Exited: c.Process.WaitForExitAsync(CancellationToken.None))).ToList();
        while (running.Count > 0)
        {
            int index;
            try
            {
                index = Task.WaitAny(running.Select(r => r.Exited).ToArray(), cancellationToken);
            }
            catch (OperationCanceledException)
            {
                var interrupted = Stop(running.Select(r => (r.Rank, r.Process)));
                Report(output, outputLock, $"mp launch: interrupted{StoppedSuffix(interrupted)}");
                return InterruptedExitCode;
            }
            var (rank, process, _) = running[index];
            running.RemoveAt(index);
            if (process.ExitCode != 0)
            {
                var stopped = Stop(running.Select(r => (r.Rank, r.Process)));
                Report(output, outputLock, $"mp launch: rank {rank} exited with code {process.ExitCode}{StoppedSuffix(stopped)}");
                return FailedExitCode;
            }
        }
        return 0;
    }

    /// <summary>Kills every child that is still running, with its process tree, waits for all of them
    /// (and their output), and returns the ranks it killed.</summary>
    private static List<int> Stop(IEnumerable<(int Rank, Process Process)> children)
    {
        var stopped = new List<int>();
        var all = children.ToList();
        foreach (var (rank, process) in all)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                stopped.Add(rank);
            }
        }
        foreach (var (_, process) in all)
        {
            process.WaitForExit();
        }
        return stopped;
    }

    private static string StoppedSuffix(List<int> stopped) => stopped.Count switch
    {
        0 => "",
        1 => $"; stopped rank {stopped[0]}",
        _ => $"; stopped ranks {string.Join(", ", stopped)}",
    };

    private static void Report(TextWriter output, object outputLock, string message)
    {
        lock (outputLock)
        {
            output.WriteLine(message);
        }
    }
}
