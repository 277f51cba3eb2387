using System.Diagnostics;
using System.Runtime.InteropServices;
using ModelParallel.Runtime.Launch;

namespace ModelParallel.Tests.Launch;

/// <summary>Launch options that run <c>dotnet mp.dll ARGS</c> (mp.dll is copied next to the test assembly),
/// and checks on the processes they started.</summary>
internal static class MpChild
{
    /// <summary>The dotnet host of the runtime running the tests: ROOT/dotnet for ROOT/shared/Microsoft.NETCore.App/VERSION/.</summary>
    public static string DotnetHost { get; } = Path.GetFullPath(Path.Combine(
        RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..", OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet"));

    public static string MpDll { get; } = Path.Combine(AppContext.BaseDirectory, "mp.dll");

    public static LaunchOptions Options(int nprocPerNode, params string[] mpArguments) =>
        new(nprocPerNode, DotnetHost, [MpDll, .. mpArguments]) { MasterPort = Launcher.FindFreePort() };

    /// <summary>The process ids the children printed as "[rank K] pid N", by rank.</summary>
    public static Dictionary<int, int> PrintedPids(LineLog log) =>
        log.Lines()
            .Select(line => line.Split(' '))
            .Where(words => words is ["[rank", _, "pid", _])
            .ToDictionary(words => int.Parse(words[1].TrimEnd(']')), words => int.Parse(words[3]));

    /// <summary>Whether process <paramref name="pid"/> is gone (or a zombie) within a few seconds: a killed
    /// grandchild closes its pipes before the kernel and its new parent have finished with it.</summary>
    public static bool Vanishes(int pid)
    {
        var clock = Stopwatch.StartNew();
        while (IsAlive(pid))
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(10))
            {
                return false;
            }
            Thread.Sleep(20);
        }
        return true;
    }

    private static bool IsAlive(int pid)
    {
        if (OperatingSystem.IsLinux())
        {
            // The state follows the parenthesised command name in /proc/PID/stat; Z and X are dead.
            string stat;
            try
            {
                stat = File.ReadAllText($"/proc/{pid}/stat");
            }
            catch (IOException)
            {
                return false;
            }
            return stat[(stat.LastIndexOf(')') + 2)..][0] is not ('Z' or 'X');
        }
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
