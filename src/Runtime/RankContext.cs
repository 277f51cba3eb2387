namespace ModelParallel.Runtime;

/// <summary>What one rank owns: its backend and the world communicator. Disposing it disposes both.</summary>
public sealed class RankContext : IDisposable
{
    public RankContext(IBackend backend, ICommunicator world)
    {
        Backend = backend;
        World = world;
    }

    public IBackend Backend { get; }

    public ICommunicator World { get; }

    public int Rank => World.Rank;

    public int WorldSize => World.Size;

    public void Dispose()
    {
        World.Dispose();
        Backend.Dispose();
    }
}
