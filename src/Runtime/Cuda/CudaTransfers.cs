namespace ModelParallel.Runtime.Cuda;

/// <summary>Transfer groups whose end is marked by events recorded on a transfer stream.</summary>
internal static class CudaTransfers
{
    /// <summary>
    /// A group finished when every event in <paramref name="done"/> has completed on the device, or once the compute
    /// stream has been ordered after them; waiting orders <paramref name="compute"/> after them. The events are
    /// destroyed then (CUDA defers destroying an event that queued work still waits on).
    /// </summary>
    public static TransferGroup Group(CudaStream compute, IReadOnlyList<CudaEvent> done)
    {
        bool released = false;
        void Release()
        {
            foreach (var e in done)
            {
                e.Dispose();
            }
            released = true;
        }
        return new TransferGroup(() =>
        {
            if (released)
            {
                return;
            }
            foreach (var e in done)
            {
                compute.Wait(e);
            }
            Release();
        }, () =>
        {
            if (!released && done.All(e => e.IsComplete))
            {
                Release();
            }
            return released;
        });
    }
}
