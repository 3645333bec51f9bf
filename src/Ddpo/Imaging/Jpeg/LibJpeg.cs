using System.Runtime.InteropServices;

namespace Ddpo.Imaging.Jpeg;

/// <summary>
/// The entry points of the system's <c>libjpeg.so.62</c> (Debian/Ubuntu package libjpeg62-turbo: the library PIL
/// encodes JPEG with), bound once as unmanaged function pointers. Loading it explicitly, rather than through
/// <c>DllImport</c>, lets a missing library become an error that names the package to install.
/// </summary>
internal sealed unsafe class LibJpeg
{
    /// <summary>The file name of libjpeg's 6.2 ABI.</summary>
    public const string LibraryName = "libjpeg.so.62";

    private static readonly Lazy<LibJpeg> Loaded = new(() => Load(LibraryName));

    /// <summary>The loaded library (loaded on first use; the load error, if any, is rethrown on every use).</summary>
    public static LibJpeg Instance => Loaded.Value;

    /// <summary><c>struct jpeg_error_mgr *jpeg_std_error(struct jpeg_error_mgr *err)</c>.</summary>
    public readonly delegate* unmanaged<byte*, byte*> StdError;
    /// <summary><c>void jpeg_CreateCompress(j_compress_ptr cinfo, int version, size_t structsize)</c>.</summary>
    public readonly delegate* unmanaged<byte*, int, nuint, void> CreateCompress;
    /// <summary><c>void jpeg_set_defaults(j_compress_ptr cinfo)</c>.</summary>
    public readonly delegate* unmanaged<byte*, void> SetDefaults;
    /// <summary><c>void jpeg_set_quality(j_compress_ptr cinfo, int quality, boolean force_baseline)</c>.</summary>
    public readonly delegate* unmanaged<byte*, int, int, void> SetQuality;
    /// <summary><c>void jpeg_start_compress(j_compress_ptr cinfo, boolean write_all_tables)</c>.</summary>
    public readonly delegate* unmanaged<byte*, int, void> StartCompress;
    /// <summary><c>JDIMENSION jpeg_write_scanlines(j_compress_ptr cinfo, JSAMPARRAY scanlines, JDIMENSION num_lines)</c>.</summary>
    public readonly delegate* unmanaged<byte*, byte**, uint, uint> WriteScanlines;
    /// <summary><c>void jpeg_finish_compress(j_compress_ptr cinfo)</c>.</summary>
    public readonly delegate* unmanaged<byte*, void> FinishCompress;
    /// <summary><c>void jpeg_destroy_compress(j_compress_ptr cinfo)</c>.</summary>
    public readonly delegate* unmanaged<byte*, void> DestroyCompress;

    private LibJpeg(nint handle)
    {
        StdError = (delegate* unmanaged<byte*, byte*>)Export(handle, "jpeg_std_error");
        CreateCompress = (delegate* unmanaged<byte*, int, nuint, void>)Export(handle, "jpeg_CreateCompress");
        SetDefaults = (delegate* unmanaged<byte*, void>)Export(handle, "jpeg_set_defaults");
        SetQuality = (delegate* unmanaged<byte*, int, int, void>)Export(handle, "jpeg_set_quality");
        StartCompress = (delegate* unmanaged<byte*, int, void>)Export(handle, "jpeg_start_compress");
        WriteScanlines = (delegate* unmanaged<byte*, byte**, uint, uint>)Export(handle, "jpeg_write_scanlines");
        FinishCompress = (delegate* unmanaged<byte*, void>)Export(handle, "jpeg_finish_compress");
        DestroyCompress = (delegate* unmanaged<byte*, void>)Export(handle, "jpeg_destroy_compress");
    }

    /// <summary>Loads <paramref name="libraryName"/> (<see cref="LibraryName"/>; another name only in tests).</summary>
    internal static LibJpeg Load(string libraryName)
    {
        // The struct offsets in LibJpegAbi are those of 64-bit Linux (LP64).
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess)
        {
            throw new PlatformNotSupportedException(
                $"the JPEG rewards encode with {LibraryName} (libjpeg62-turbo) and support 64-bit Linux only, not {RuntimeInformation.OSDescription} ({RuntimeInformation.ProcessArchitecture})");
        }
        if (!NativeLibrary.TryLoad(libraryName, out var handle))
        {
            throw new DllNotFoundException(
                $"{libraryName} could not be loaded. The JPEG rewards encode with libjpeg-turbo exactly as PIL does; install the Debian/Ubuntu package libjpeg62-turbo (apt-get install libjpeg62-turbo).");
        }
        return new LibJpeg(handle);
    }

    private static nint Export(nint handle, string name) =>
        NativeLibrary.TryGetExport(handle, name, out var address)
            ? address
            : throw new EntryPointNotFoundException($"{LibraryName} has no {name}: expected libjpeg-turbo's 6.2 ABI (Debian/Ubuntu package libjpeg62-turbo)");
}
