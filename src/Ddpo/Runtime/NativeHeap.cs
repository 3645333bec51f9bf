using System.Runtime.InteropServices;

namespace Ddpo.Runtime;

/// <summary>
/// Gives memory that libtorch has freed back to the operating system. libtorch's CPU allocator uses the C
/// heap; glibc keeps freed blocks in per-thread arenas (sampling, rewards on the thread pool and the intra-op
/// threads each get one), so a process's resident size keeps the high-water mark of every arena unless the
/// heap is trimmed. Called once per epoch it costs milliseconds; elsewhere than glibc it does nothing.
/// </summary>
public static partial class NativeHeap
{
    private static bool _unavailable = !OperatingSystem.IsLinux();

    /// <summary>
    /// Returns free C-heap memory to the system (glibc <c>malloc_trim(0)</c>); false where there is no glibc
    /// (nothing is done then).
    /// </summary>
    public static bool Trim()
    {
        if (_unavailable) return false;
        try
        {
            MallocTrim(0);
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            _unavailable = true; // musl or another C library: nothing to trim
            return false;
        }
    }

    // glibc's soname; "libc.so" is a linker script on Debian, not a library.
    [LibraryImport("libc.so.6", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}
