using ModelParallel.Cli;

namespace ModelParallel.Tests.Support;

/// <summary>Runs <c>mp</c> in process with stdout and stderr captured (callers belong to the console collection).</summary>
internal static class MpRun
{
    public static (int Code, string Output, string Error) Run(string[] args)
    {
        var (previousOut, previousError) = (Console.Out, Console.Error);
        using var output = new StringWriter();
        using var error = new StringWriter();
        Console.SetOut(output);
        Console.SetError(error);
        try
        {
            return (Program.Main(args), output.ToString(), error.ToString());
        }
        finally
        {
            Console.SetOut(previousOut);
            Console.SetError(previousError);
        }
    }
}
