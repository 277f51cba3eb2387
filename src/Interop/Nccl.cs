using System.Runtime.InteropServices;

namespace ModelParallel.Interop;

/// <summary>Declarations of NCCL 2 (libnccl.so.2, ABI of 2.28). Every function returns an ncclResult_t (0 = success);
/// communicators are ncclComm_t pointers, streams cudaStream_t pointers.</summary>
internal static unsafe partial class Nccl
{
    public const string Library = "nccl";

    public const int Success = 0;
    public const int InProgress = 7;

    // ncclDataType_t
    public const int Int8 = 0;
    public const int Uint8 = 1;
    public const int Int32 = 2;
    public const int Uint32 = 3;
    public const int Int64 = 4;
    public const int Uint64 = 5;
    public const int Float16 = 6;
    public const int Float32 = 7;
    public const int Float64 = 8;
    public const int BFloat16 = 9;

    // ncclRedOp_t
    public const int Sum = 0;
    public const int Prod = 1;
    public const int Max = 2;
    public const int Min = 3;
    public const int Avg = 4;

    [LibraryImport(Library, EntryPoint = "ncclGetVersion")]
    public static partial int GetVersion(int* version);

    [LibraryImport(Library, EntryPoint = "ncclGetUniqueId")]
    public static partial int GetUniqueId(NcclUniqueId* uniqueId);

    [LibraryImport(Library, EntryPoint = "ncclCommInitRank")]
    public static partial int CommInitRank(nint* comm, int nranks, NcclUniqueId commId, int rank);

    [LibraryImport(Library, EntryPoint = "ncclCommInitAll")]
    public static partial int CommInitAll(nint* comms, int ndev, int* devlist);

    /// <summary>config may be null: the new communicator inherits the parent's configuration.</summary>
    [LibraryImport(Library, EntryPoint = "ncclCommSplit")]
    public static partial int CommSplit(nint comm, int color, int key, nint* newcomm, nint config);

    [LibraryImport(Library, EntryPoint = "ncclCommFinalize")]
    public static partial int CommFinalize(nint comm);

    [LibraryImport(Library, EntryPoint = "ncclCommDestroy")]
    public static partial int CommDestroy(nint comm);

    [LibraryImport(Library, EntryPoint = "ncclCommAbort")]
    public static partial int CommAbort(nint comm);

    [LibraryImport(Library, EntryPoint = "ncclCommGetAsyncError")]
    public static partial int CommGetAsyncError(nint comm, int* asyncError);

    [LibraryImport(Library, EntryPoint = "ncclCommCount")]
    public static partial int CommCount(nint comm, int* count);

    [LibraryImport(Library, EntryPoint = "ncclCommUserRank")]
    public static partial int CommUserRank(nint comm, int* rank);

    [LibraryImport(Library, EntryPoint = "ncclGroupStart")]
    public static partial int GroupStart();

    [LibraryImport(Library, EntryPoint = "ncclGroupEnd")]
    public static partial int GroupEnd();

    [LibraryImport(Library, EntryPoint = "ncclAllReduce")]
    public static partial int AllReduce(nint sendbuff, nint recvbuff, nuint count, int datatype, int op, nint comm,
        nint stream);

    [LibraryImport(Library, EntryPoint = "ncclAllGather")]
    public static partial int AllGather(nint sendbuff, nint recvbuff, nuint sendcount, int datatype, nint comm,
        nint stream);

    [LibraryImport(Library, EntryPoint = "ncclReduceScatter")]
    public static partial int ReduceScatter(nint sendbuff, nint recvbuff, nuint recvcount, int datatype, int op,
        nint comm, nint stream);

    [LibraryImport(Library, EntryPoint = "ncclBroadcast")]
    public static partial int Broadcast(nint sendbuff, nint recvbuff, nuint count, int datatype, int root, nint comm,
        nint stream);

    [LibraryImport(Library, EntryPoint = "ncclReduce")]
    public static partial int Reduce(nint sendbuff, nint recvbuff, nuint count, int datatype, int op, int root,
        nint comm, nint stream);

    [LibraryImport(Library, EntryPoint = "ncclSend")]
    public static partial int Send(nint sendbuff, nuint count, int datatype, int peer, nint comm, nint stream);

    [LibraryImport(Library, EntryPoint = "ncclRecv")]
    public static partial int Recv(nint recvbuff, nuint count, int datatype, int peer, nint comm, nint stream);

    [LibraryImport(Library, EntryPoint = "ncclGetErrorString")]
    public static partial byte* GetErrorString(int result);

    /// <summary>Detail of the last failure (comm may be null); not cleared by reading.</summary>
    [LibraryImport(Library, EntryPoint = "ncclGetLastError")]
    public static partial byte* GetLastError(nint comm);
}
