using System.Runtime.InteropServices;

namespace Ddpo.Tests.Support;

/// <summary>
/// Bytes the C heap has handed out and not taken back (glibc <c>mallinfo2</c>: <c>uordblks + hblkhd</c>, over all
/// arenas): libtorch's CPU allocator takes every tensor from there, including those the autograd graph keeps.
/// </summary>
public static class HeapUsage
{
    /// <summary>The bytes in use now.</summary>
    public static long InUseBytes()
    {
        var info = MallInfo2();
        return (long)(info.Uordblks + info.Hblkhd);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MallInfo
    {
        public nuint Arena, Ordblks, Smblks, Hblks, Hblkhd, Usmblks, Fsmblks, Uordblks, Fordblks, Keepcost;
    }

    [DllImport("libc.so.6", EntryPoint = "mallinfo2")]
    private static extern MallInfo MallInfo2();
}
