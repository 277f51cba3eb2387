namespace ModelParallel.Bench;

/// <summary><c>mpbench</c>: GPU benchmark programs. Each prints a table and writes JSON.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.WriteLine("usage: mpbench collectives|kernels [options]   (each verb: --help)");
            return args.Length == 0 ? 2 : 0;
        }
        try
        {
            var options = Options.Parse(args[1..]);
            return args[0] switch
            {
                "collectives" => CollectivesBench.Run(options),
                "kernels" => KernelsBench.Run(options),
                _ => throw new ArgumentException($"unknown benchmark '{args[0]}' (collectives, kernels)"),
            };
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            Console.Error.WriteLine($"mpbench {args[0]}: {e.Message}");
            return 2;
        }
    }
}
