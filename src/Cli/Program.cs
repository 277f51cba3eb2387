using ModelParallel.Interop;

namespace ModelParallel.Cli;

/// <summary>Entry point of the <c>mp</c> command: dispatches the first argument to a verb.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.WriteLine(Verbs.Usage());
            return args.Length == 0 ? 2 : 0;
        }
        var verb = Verbs.Find(args[0]);
        if (verb is null)
        {
            Console.Error.WriteLine($"mp: unknown verb '{args[0]}'");
            Console.Error.WriteLine(Verbs.Usage());
            return 2;
        }
        try
        {
            return verb.Run(args[1..]);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or NotSupportedException or IOException or InvalidDataException)
        {
            Console.Error.WriteLine($"mp {args[0]}: {e.Message}");
            return 2;
        }
        catch (NativeCallException e)
        {
            // A CUDA, cuBLAS, NCCL or kernel failure: its message names the call, the code and the library's text.
            Console.Error.WriteLine($"mp {args[0]}: {e.Message}");
            return 1;
        }
    }
}
