using System.Runtime.InteropServices;

namespace ModelParallel.Interop;

/// <summary>mp_rope_scaling (native/include/mp_native.h): Llama 3.x rotary frequency scaling, four doubles, 32 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MpRopeScaling
{
    public double Factor;
    public double LowFreqFactor;
    public double HighFreqFactor;
    public double OriginalMaxPositions;
}
