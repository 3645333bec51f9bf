namespace Ddpo.Imaging.Jpeg;

/// <summary>
/// The parts of libjpeg's 6.2 ABI (<c>libjpeg.so.62</c>, Debian's libjpeg62-turbo 2.1.5) that
/// <see cref="PilJpegEncoder"/> touches, for Linux x86_64 (LP64: pointers and <c>long</c>/<c>size_t</c> are 8 bytes,
/// <c>boolean</c>, enums and <c>JDIMENSION</c> are 4). The figures were printed by a C program compiled against the
/// installed <c>jpeglib.h</c> / <c>jconfig.h</c> / <c>jmorecfg.h</c> (<c>sizeof</c> / <c>offsetof</c>); they are fixed
/// by the ABI, which libjpeg-turbo keeps stable. <c>jpeg_CreateCompress</c> checks <see cref="CompressStructSize"/>
/// and <see cref="LibVersion"/> against the library's own, so a mismatch cannot go unnoticed.
/// </summary>
internal static class LibJpegAbi
{
    /// <summary><c>JPEG_LIB_VERSION</c> of the 6.2 ABI, passed to <c>jpeg_CreateCompress</c>.</summary>
    public const int LibVersion = 62;

    /// <summary><c>JPEG_MAX_DIMENSION</c>: the largest width or height libjpeg accepts.</summary>
    public const int MaxDimension = 65500;

    /// <summary><c>JMSG_LENGTH_MAX</c>: the buffer size <c>format_message</c> writes into.</summary>
    public const int MessageLengthMax = 200;

    /// <summary><c>JCS_RGB</c> (<c>J_COLOR_SPACE</c>).</summary>
    public const int ColorSpaceRgb = 2;

    /// <summary><c>sizeof(struct jpeg_compress_struct)</c>.</summary>
    public const int CompressStructSize = 520;

    /// <summary><c>sizeof(struct jpeg_error_mgr)</c>.</summary>
    public const int ErrorMgrSize = 168;

    // struct jpeg_compress_struct: the fields we set or read.
    /// <summary><c>struct jpeg_error_mgr *err</c>.</summary>
    public const int CompressErr = 0;
    /// <summary><c>void *client_data</c> (ours: the <see cref="EncoderState"/> of this encoding).</summary>
    public const int CompressClientData = 24;
    /// <summary><c>struct jpeg_destination_mgr *dest</c>.</summary>
    public const int CompressDest = 40;
    /// <summary><c>JDIMENSION image_width</c>.</summary>
    public const int CompressImageWidth = 48;
    /// <summary><c>JDIMENSION image_height</c>.</summary>
    public const int CompressImageHeight = 52;
    /// <summary><c>int input_components</c>.</summary>
    public const int CompressInputComponents = 56;
    /// <summary><c>J_COLOR_SPACE in_color_space</c>.</summary>
    public const int CompressInColorSpace = 60;

    // struct jpeg_error_mgr: the method pointers we replace or call, and the warning counter.
    /// <summary><c>void (*error_exit)(j_common_ptr)</c>.</summary>
    public const int ErrorExit = 0;
    /// <summary><c>void (*emit_message)(j_common_ptr, int msg_level)</c>.</summary>
    public const int ErrorEmitMessage = 8;
    /// <summary><c>void (*output_message)(j_common_ptr)</c>.</summary>
    public const int ErrorOutputMessage = 16;
    /// <summary><c>void (*format_message)(j_common_ptr, char *buffer)</c>.</summary>
    public const int ErrorFormatMessage = 24;
    /// <summary><c>long num_warnings</c>.</summary>
    public const int ErrorNumWarnings = 128;
}

/// <summary>
/// <c>struct jpeg_destination_mgr</c> (40 bytes: <c>next_output_byte</c> at 0, <c>free_in_buffer</c> at 8, then the
/// three method pointers at 16, 24, 32), followed by our own fields; libjpeg only sees the first five.
/// </summary>
internal unsafe struct EncoderState
{
    /// <summary><c>JOCTET *next_output_byte</c>.</summary>
    public byte* NextOutputByte;
    /// <summary><c>size_t free_in_buffer</c>.</summary>
    public nuint FreeInBuffer;
    /// <summary><c>void (*init_destination)(j_compress_ptr)</c>.</summary>
    public delegate* unmanaged<byte*, void> InitDestination;
    /// <summary><c>boolean (*empty_output_buffer)(j_compress_ptr)</c>.</summary>
    public delegate* unmanaged<byte*, int> EmptyOutputBuffer;
    /// <summary><c>void (*term_destination)(j_compress_ptr)</c>.</summary>
    public delegate* unmanaged<byte*, void> TermDestination;

    // Ours, after libjpeg's struct.
    /// <summary>The output buffer (native memory, grown by doubling).</summary>
    public byte* Buffer;
    /// <summary>Bytes allocated at <see cref="Buffer"/>.</summary>
    public nuint Capacity;
    /// <summary>Set when the output buffer could not grow (the rest of the output went to <see cref="Scratch"/>).</summary>
    public int OutOfMemory;
    /// <summary>libjpeg's first warning, formatted (<see cref="LibJpegAbi.MessageLengthMax"/> bytes, NUL-terminated).</summary>
    public fixed byte Warning[LibJpegAbi.MessageLengthMax];
    /// <summary>Where output goes, discarded, after the buffer failed to grow (so libjpeg never has to suspend).</summary>
    public fixed byte Scratch[4096];
}
