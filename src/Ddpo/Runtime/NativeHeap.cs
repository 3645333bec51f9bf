using System.Runtime.InteropServices;

namespace Ddpo.Runtime;

/// <summary>
/// Gives memory that libtorch has freed back to the operating system. libtorch's CPU allocator uses the C
/// heap, and glibc keeps freed blocks: it raises its mmap threshold each time a large block is freed (up to
/// 32 MiB), so later tensors of a few MiB come from the heap arenas, which fragment and keep their high-water
/// mark. Measured on the default run (2 cores): resident size rose by about 0.6 GB while one epoch sampled and
/// peaked at 2.1 GB; with the threshold fixed at 1 MiB the peak was 1.15 GB. But at 1 MiB every activation of a
/// sampling batch (16 x 32 x 32 x 32 floats = 2 MiB) got a fresh mapping, i.e. page faults on every page of every op:
/// on the Zen 5 the default run's sampling took 40 s per epoch instead of 11 (16 MiB; peak 1.0 GB over 2 epochs).
/// Fixing the mmap threshold also fixes glibc's trim threshold at its default, 128 KiB: every free that left more
/// than that at the top of the heap gave it back, and the next op page-faulted it in again. The kernel's page-fault
/// path was 14-18% of the built-in UNet's forward + backward at batch 32 (perf, Zen 5), which took 1270 ms a call;
/// with the trim threshold at 512 MiB it takes 650-750 ms (docs/cpu-profile.md). The trainer still trims the whole
/// heap after every epoch (<see cref="Trim"/>). Elsewhere than glibc this does nothing.
/// </summary>
internal static partial class NativeHeap
{
    private static bool _unavailable = !OperatingSystem.IsLinux();

    /// <summary>
    /// Returns free C-heap memory to the system (glibc <c>malloc_trim(0)</c>); false where there is no glibc
    /// (nothing is done then).
    /// </summary>
    public static bool Trim() => CallGlibc(() => { MallocTrim(0); return true; });

    /// <summary>
    /// Fixes glibc's mmap threshold at <paramref name="bytes"/> (default 16 MiB): tensors of that size or more get
    /// their own mapping, returned to the system when freed, instead of heap space that stays resident. Costs a page
    /// fault per fresh page of such tensors. And fixes the trim threshold at <paramref name="keepFreeTop"/> (default
    /// 512 MiB): up to that much freed memory at the top of the heap stays for the next ops instead of going back
    /// to the system after every free. Call once at start-up; returns false where there is no glibc.
    /// </summary>
    public static bool ReturnLargeBlocksToTheSystem(int bytes = 16 << 20, int keepFreeTop = 512 << 20) =>
        CallGlibc(() => MallOpt(MmapThreshold, bytes) == 1 && MallOpt(TrimThreshold, keepFreeTop) == 1);

    private static bool CallGlibc(Func<bool> call)
    {
        if (_unavailable) return false;
        try
        {
            return call();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            _unavailable = true; // musl or another C library: nothing to do
            return false;
        }
    }

    private const int TrimThreshold = -1; // M_TRIM_THRESHOLD in malloc.h
    private const int MmapThreshold = -3; // M_MMAP_THRESHOLD in malloc.h

    [LibraryImport("libc.so.6", EntryPoint = "mallopt")]
    private static partial int MallOpt(int param, int value);

    // glibc's soname; "libc.so" is a linker script on Debian, not a library.
    [LibraryImport("libc.so.6", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}
