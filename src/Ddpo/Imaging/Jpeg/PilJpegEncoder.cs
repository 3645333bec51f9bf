using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static Ddpo.Imaging.Jpeg.LibJpegAbi;

namespace Ddpo.Imaging.Jpeg;

/// <summary>
/// Encodes RGB images as JPEG byte for byte like PIL: <c>Image.fromarray(rgb).save(buf, format="JPEG",
/// quality=q)</c>, which is what ddpo-pytorch's JPEG rewards measure. It calls the same library PIL does (the
/// system's libjpeg-turbo, <c>libjpeg.so.62</c>) with the same settings: <c>jpeg_set_defaults</c> for RGB input
/// (YCbCr, 4:2:0 chroma subsampling, the islow integer DCT, the standard Huffman tables without optimisation, a
/// baseline sequential JFIF 1.01 file with density 1x1 and no unit), then <c>jpeg_set_quality(q, TRUE)</c>, no
/// smoothing, no restart markers, no EXIF, ICC profile or comment.
/// </summary>
internal static unsafe class PilJpegEncoder
{
    /// <summary>Rows handed to <c>jpeg_write_scanlines</c> per call (the output does not depend on it).</summary>
    private const int RowsPerCall = 64;

    /// <summary>
    /// The JPEG file of one image: <paramref name="rgb"/> holds <paramref name="height"/> rows of
    /// <paramref name="width"/> interleaved RGB pixels (PIL's <c>uint8 [H, W, 3]</c> array), <paramref name="quality"/>
    /// is PIL's (1..100).
    /// </summary>
    public static byte[] Encode(ReadOnlySpan<byte> rgb, int width, int height, int quality)
    {
        // Checked here so that libjpeg never meets an error: its errors cannot be caught from .NET (see OnErrorExit).
        if (width < 1 || width > MaxDimension || height < 1 || height > MaxDimension)
        {
            throw new ArgumentOutOfRangeException(nameof(width), $"JPEG image size: expected width and height in 1..{MaxDimension}, got {width}x{height}");
        }
        if (rgb.Length != (long)width * height * 3)
        {
            throw new ArgumentException($"rgb: expected {(long)width * height * 3} bytes ({width}x{height} pixels x 3 channels, RGB), got {rgb.Length}", nameof(rgb));
        }
        if (quality < 1 || quality > 100)
        {
            throw new ArgumentOutOfRangeException(nameof(quality), $"JPEG quality: expected 1..100, got {quality}");
        }
        var lib = LibJpeg.Instance;

        // One zeroed native block: jpeg_compress_struct, jpeg_error_mgr, then our destination manager and state.
        var block = (byte*)NativeMemory.AllocZeroed((nuint)(CompressStructSize + ErrorMgrSize + sizeof(EncoderState)));
        byte* cinfo = block, err = block + CompressStructSize;
        var state = (EncoderState*)(err + ErrorMgrSize);
        bool created = false;
        try
        {
            // Enough for typical 32-64 px reward images; it doubles when full (white noise takes ~1.3 bytes a pixel).
            state->Capacity = (nuint)Math.Min((long)width * height / 2 + 4096, 16L << 20);
            state->Buffer = (byte*)NativeMemory.Alloc(state->Capacity);
            state->InitDestination = &OnInitDestination;
            state->EmptyOutputBuffer = &OnEmptyOutputBuffer;
            state->TermDestination = &OnTermDestination;

            lib.StdError(err);
            *(delegate* unmanaged<byte*, void>*)(err + ErrorExit) = &OnErrorExit;
            *(delegate* unmanaged<byte*, int, void>*)(err + ErrorEmitMessage) = &OnEmitMessage;
            *(delegate* unmanaged<byte*, void>*)(err + ErrorOutputMessage) = &OnOutputMessage;
            *(byte**)(cinfo + CompressErr) = err;
            // jpeg_CreateCompress zeroes the struct but keeps err and client_data; it checks version and size.
            *(EncoderState**)(cinfo + CompressClientData) = state;
            lib.CreateCompress(cinfo, LibVersion, CompressStructSize);
            created = true;
            *(EncoderState**)(cinfo + CompressDest) = state;

            // PIL's JpegEncode.c for an "RGB" image, with quality set and everything else at PIL's defaults.
            *(uint*)(cinfo + CompressImageWidth) = (uint)width;
            *(uint*)(cinfo + CompressImageHeight) = (uint)height;
            *(int*)(cinfo + CompressInputComponents) = 3;
            *(int*)(cinfo + CompressInColorSpace) = ColorSpaceRgb;
            lib.SetDefaults(cinfo);
            lib.SetQuality(cinfo, quality, 1);
            lib.StartCompress(cinfo, 1);

            byte** rows = stackalloc byte*[RowsPerCall];
            fixed (byte* pixels = rgb)
            {
                int y = 0;
                while (y < height)
                {
                    int n = Math.Min(RowsPerCall, height - y);
                    for (int i = 0; i < n; i++)
                    {
                        rows[i] = pixels + (long)(y + i) * width * 3;
                    }
                    uint written = lib.WriteScanlines(cinfo, rows, (uint)n);
                    if (written == 0)
                    {
                        throw new InvalidOperationException($"libjpeg accepted no rows at row {y} of a {width}x{height} image");
                    }
                    y += (int)written;
                }
            }
            lib.FinishCompress(cinfo);

            if (state->OutOfMemory != 0)
            {
                throw new OutOfMemoryException($"JPEG encoding of a {width}x{height} image: the output buffer could not grow beyond {state->Capacity} bytes");
            }
            if (*(long*)(err + ErrorNumWarnings) != 0)
            {
                throw new InvalidOperationException($"libjpeg warned while encoding a {width}x{height} image: {Text(state->Warning)}");
            }
            return new ReadOnlySpan<byte>(state->Buffer, checked((int)(state->NextOutputByte - state->Buffer))).ToArray();
        }
        finally
        {
            if (created)
            {
                lib.DestroyCompress(cinfo);
            }
            NativeMemory.Free(state->Buffer);
            NativeMemory.Free(block);
        }
    }

    private static EncoderState* State(byte* cinfo) => *(EncoderState**)(cinfo + CompressClientData);

    private static string Text(byte* message) => Marshal.PtrToStringUTF8((nint)message) ?? "";

    /// <summary>Called by <c>jpeg_start_compress</c>: output starts at the beginning of the buffer.</summary>
    [UnmanagedCallersOnly]
    private static void OnInitDestination(byte* cinfo)
    {
        var state = State(cinfo);
        state->NextOutputByte = state->Buffer;
        state->FreeInBuffer = state->Capacity;
    }

    /// <summary>
    /// Called when the buffer is full (the whole buffer then holds output): double it and go on after the old
    /// data. Returning TRUE always means libjpeg never suspends; if memory runs out, the rest goes to a scratch
    /// area and <see cref="Encode"/> throws afterwards (no exception may leave an unmanaged callback).
    /// </summary>
    [UnmanagedCallersOnly]
    private static int OnEmptyOutputBuffer(byte* cinfo)
    {
        var state = State(cinfo);
        if (state->OutOfMemory == 0)
        {
            nuint used = state->Capacity, grown = used * 2;
            try
            {
                state->Buffer = (byte*)NativeMemory.Realloc(state->Buffer, grown);
                state->Capacity = grown;
                state->NextOutputByte = state->Buffer + used;
                state->FreeInBuffer = grown - used;
                return 1;
            }
            catch (OutOfMemoryException)
            {
                state->OutOfMemory = 1; // Realloc left the old buffer as it was
            }
        }
        state->NextOutputByte = state->Scratch;
        state->FreeInBuffer = 4096;
        return 1;
    }

    /// <summary>Called by <c>jpeg_finish_compress</c>; the output ends at <c>next_output_byte</c>.</summary>
    [UnmanagedCallersOnly]
    private static void OnTermDestination(byte* cinfo)
    {
    }

    /// <summary>Warnings (level -1) are counted and the first one kept; trace messages are ignored.</summary>
    [UnmanagedCallersOnly]
    private static void OnEmitMessage(byte* cinfo, int level)
    {
        if (level >= 0)
        {
            return;
        }
        var err = *(byte**)(cinfo + CompressErr);
        ref long warnings = ref Unsafe.AsRef<long>(err + ErrorNumWarnings);
        if (warnings++ == 0)
        {
            var format = *(delegate* unmanaged<byte*, byte*, void>*)(err + ErrorFormatMessage);
            format(cinfo, State(cinfo)->Warning);
        }
    }

    /// <summary>libjpeg's default prints to stderr; messages are reported through exceptions instead.</summary>
    [UnmanagedCallersOnly]
    private static void OnOutputMessage(byte* cinfo)
    {
    }

    /// <summary>
    /// A fatal libjpeg error. libjpeg requires that this never returns (its default calls <c>exit()</c>); C code
    /// would <c>longjmp</c> out, which .NET cannot do, and an exception cannot cross native frames. The input checks
    /// in <see cref="Encode"/> and a destination that never fails leave only native out-of-memory to get here, so
    /// the process ends with libjpeg's message rather than continuing on corrupt state.
    /// </summary>
    [UnmanagedCallersOnly]
    private static void OnErrorExit(byte* cinfo)
    {
        var err = *(byte**)(cinfo + CompressErr);
        byte* message = stackalloc byte[MessageLengthMax];
        message[0] = 0;
        var format = *(delegate* unmanaged<byte*, byte*, void>*)(err + ErrorFormatMessage);
        format(cinfo, message);
        Environment.FailFast($"{LibJpeg.LibraryName} (libjpeg62-turbo) fatal error while encoding a JPEG: {Text(message)}");
    }
}
