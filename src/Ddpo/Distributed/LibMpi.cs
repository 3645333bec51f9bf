using System.Runtime.InteropServices;

namespace Ddpo.Distributed;

/// <summary>
/// The few entry points of Open MPI's <c>libmpi.so.40</c> (Debian/Ubuntu packages openmpi-bin and libopenmpi3, Open MPI
/// 4.x) that data-parallel training needs, bound once as unmanaged function pointers. Open MPI's handles
/// (<c>MPI_COMM_WORLD</c>, <c>MPI_DOUBLE</c>, <c>MPI_SUM</c>, ...) are the addresses of exported symbols
/// (<c>ompi_mpi_comm_world</c>, ...), so no header values are hard-coded beyond <c>MPI_IN_PLACE</c> and the thread levels.
/// Other MPI implementations (MPICH's handles are integers) are not supported by this binding.
/// </summary>
internal sealed unsafe class LibMpi
{
    /// <summary>The file name of Open MPI 4.x's library.</summary>
    public const string LibraryName = "libmpi.so.40";

    /// <summary><c>MPI_IN_PLACE</c>: <c>(void*)1</c> in Open MPI's mpi.h.</summary>
    public static readonly nint InPlace = 1;

    /// <summary><c>MPI_THREAD_MULTIPLE</c> (the watchdog thread may call <c>MPI_Abort</c> while another thread waits in a collective).</summary>
    public const int ThreadMultiple = 3;

    /// <summary><c>MPI_MAX_PROCESSOR_NAME</c> in Open MPI 4 (OPAL_MAX_PROCESSOR_NAME).</summary>
    public const int MaxProcessorName = 256;

    /// <summary><c>int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)</c>.</summary>
    public readonly delegate* unmanaged<int*, byte***, int, int*, int> InitThread;
    /// <summary><c>int MPI_Initialized(int *flag)</c>.</summary>
    public readonly delegate* unmanaged<int*, int> Initialized;
    /// <summary><c>int MPI_Finalized(int *flag)</c>.</summary>
    public readonly delegate* unmanaged<int*, int> Finalized;
    /// <summary><c>int MPI_Comm_rank(MPI_Comm comm, int *rank)</c>.</summary>
    public readonly delegate* unmanaged<nint, int*, int> CommRank;
    /// <summary><c>int MPI_Comm_size(MPI_Comm comm, int *size)</c>.</summary>
    public readonly delegate* unmanaged<nint, int*, int> CommSize;
    /// <summary><c>int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype, MPI_Op op, MPI_Comm comm)</c>.</summary>
    public readonly delegate* unmanaged<void*, void*, int, nint, nint, nint, int> Allreduce;
    /// <summary><c>int MPI_Allgather(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf, int recvcount, MPI_Datatype recvtype, MPI_Comm comm)</c>.</summary>
    public readonly delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int> Allgather;
    /// <summary><c>int MPI_Allgatherv(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf, const int recvcounts[], const int displs[], MPI_Datatype recvtype, MPI_Comm comm)</c>.</summary>
    public readonly delegate* unmanaged<void*, int, nint, void*, int*, int*, nint, nint, int> Allgatherv;
    /// <summary><c>int MPI_Bcast(void *buffer, int count, MPI_Datatype datatype, int root, MPI_Comm comm)</c>.</summary>
    public readonly delegate* unmanaged<void*, int, nint, int, nint, int> Bcast;
    /// <summary><c>int MPI_Abort(MPI_Comm comm, int errorcode)</c>.</summary>
    public readonly delegate* unmanaged<nint, int, int> Abort;
    /// <summary><c>int MPI_Finalize(void)</c>.</summary>
    public readonly delegate* unmanaged<int> Finalize;
    /// <summary><c>int MPI_Get_processor_name(char *name, int *resultlen)</c>.</summary>
    public readonly delegate* unmanaged<byte*, int*, int> GetProcessorName;

    /// <summary><c>MPI_COMM_WORLD</c>.</summary>
    public readonly nint CommWorld;
    /// <summary><c>MPI_DOUBLE</c>.</summary>
    public readonly nint Double;
    /// <summary><c>MPI_FLOAT</c>.</summary>
    public readonly nint Float;
    /// <summary><c>MPI_INT64_T</c>.</summary>
    public readonly nint Int64;
    /// <summary><c>MPI_BYTE</c>.</summary>
    public readonly nint Byte;
    /// <summary><c>MPI_SUM</c>.</summary>
    public readonly nint OpSum;
    /// <summary><c>MPI_MAX</c>.</summary>
    public readonly nint OpMax;

    private LibMpi(nint handle)
    {
        InitThread = (delegate* unmanaged<int*, byte***, int, int*, int>)Export(handle, "MPI_Init_thread");
        Initialized = (delegate* unmanaged<int*, int>)Export(handle, "MPI_Initialized");
        Finalized = (delegate* unmanaged<int*, int>)Export(handle, "MPI_Finalized");
        CommRank = (delegate* unmanaged<nint, int*, int>)Export(handle, "MPI_Comm_rank");
        CommSize = (delegate* unmanaged<nint, int*, int>)Export(handle, "MPI_Comm_size");
        Allreduce = (delegate* unmanaged<void*, void*, int, nint, nint, nint, int>)Export(handle, "MPI_Allreduce");
        Allgather = (delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int>)Export(handle, "MPI_Allgather");
        Allgatherv = (delegate* unmanaged<void*, int, nint, void*, int*, int*, nint, nint, int>)Export(handle, "MPI_Allgatherv");
        Bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)Export(handle, "MPI_Bcast");
        Abort = (delegate* unmanaged<nint, int, int>)Export(handle, "MPI_Abort");
        Finalize = (delegate* unmanaged<int>)Export(handle, "MPI_Finalize");
        GetProcessorName = (delegate* unmanaged<byte*, int*, int>)Export(handle, "MPI_Get_processor_name");
        CommWorld = Export(handle, "ompi_mpi_comm_world");
        Double = Export(handle, "ompi_mpi_double");
        Float = Export(handle, "ompi_mpi_float");
        Int64 = Export(handle, "ompi_mpi_int64_t");
        Byte = Export(handle, "ompi_mpi_byte");
        OpSum = Export(handle, "ompi_mpi_op_sum");
        OpMax = Export(handle, "ompi_mpi_op_max");
    }

    /// <summary>
    /// Loads <paramref name="libraryName"/> (<see cref="LibraryName"/>; another name only in tests). Open MPI loads its
    /// transport plugins with dlopen, and they resolve symbols of libmpi itself, so the library is opened with
    /// RTLD_GLOBAL first (NativeLibrary opens with RTLD_LOCAL).
    /// </summary>
    public static LibMpi Load(string libraryName = LibraryName)
    {
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess)
        {
            throw new PlatformNotSupportedException(
                $"multi-process training loads Open MPI's {LibraryName} and supports 64-bit Linux only, not {RuntimeInformation.OSDescription}");
        }
        var global = OpenGlobal(libraryName);
        if (global == 0 || !NativeLibrary.TryLoad(libraryName, out var handle))
        {
            throw new DllNotFoundException(
                $"this process was started by an MPI launcher (mpirun / srun) but Open MPI's {libraryName} could not be loaded: " +
                "install Open MPI 4 (Debian/Ubuntu: apt-get install openmpi-bin, which brings libopenmpi3) on every machine of the job");
        }
        return new LibMpi(handle);
    }

    private static nint Export(nint handle, string name) =>
        NativeLibrary.TryGetExport(handle, name, out var address)
            ? address
            : throw new EntryPointNotFoundException($"{LibraryName} has no symbol '{name}': an Open MPI 4.x library is needed (not MPICH or Intel MPI)");

    private const int RtldNow = 2, RtldGlobal = 0x100;

    [DllImport("libc", EntryPoint = "dlopen")]
    private static extern nint DlOpen(string file, int mode);

    private static nint OpenGlobal(string name)
    {
        try
        {
            return DlOpen(name, RtldNow | RtldGlobal);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return 0;
        }
    }
}
