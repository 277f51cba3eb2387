using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ModelParallel.Interop;

/// <summary>cublasLtMatmulAlgo_t: 64 opaque bytes (uint64_t data[8]) naming a chosen algorithm.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CublasLtMatmulAlgo
{
    private Data _data;

    [InlineArray(8)]
    private struct Data
    {
        private ulong _first;
    }
}

/// <summary>cublasLtMatmulHeuristicResult_t: one candidate returned by cublasLtMatmulAlgoGetHeuristic.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CublasLtHeuristicResult
{
    public CublasLtMatmulAlgo Algo;
    public nuint WorkspaceSize;
    public int State;
    public float WavesCount;
    private Reserved _reserved;

    [InlineArray(4)]
    private struct Reserved
    {
        private int _first;
    }
}
