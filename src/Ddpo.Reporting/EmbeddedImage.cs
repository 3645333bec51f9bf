using System.Buffers.Binary;

namespace Ddpo.Reporting;

/// <summary>A PNG file read for embedding in HTML as a base64 data URI.</summary>
/// <param name="DataUri">The <c>data:image/png;base64,...</c> URI.</param>
/// <param name="Width">Pixel width from the PNG header.</param>
/// <param name="Height">Pixel height from the PNG header.</param>
internal sealed record EmbeddedImage(string DataUri, int Width, int Height)
{
    private const long MaxBytes = 16L << 20;
    private static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>
    /// Reads <paramref name="path"/>; null where it is missing, unreadable, larger than 16 MiB or not a PNG
    /// (a report must still render when an image is absent or half-written).
    /// </summary>
    public static EmbeddedImage? TryLoad(string path)
    {
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists || info.Length > MaxBytes) return null;
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        // Signature, then the IHDR chunk: length (4), "IHDR" (4), width (4), height (4), big-endian.
        if (bytes.Length < 33 || !bytes.AsSpan(0, 8).SequenceEqual(Signature) || !bytes.AsSpan(12, 4).SequenceEqual("IHDR"u8)) return null;
        int width = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16, 4)), height = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20, 4));
        if (width <= 0 || height <= 0) return null;
        return new EmbeddedImage("data:image/png;base64," + Convert.ToBase64String(bytes), width, height);
    }

    /// <summary>
    /// Display size: small images are magnified by a whole factor to about <paramref name="target"/> pixels
    /// (crisp with <c>image-rendering: pixelated</c>); large ones are shrunk to it.
    /// </summary>
    public (int Width, int Height) DisplaySize(int target = 128)
    {
        var longest = Math.Max(Width, Height);
        if (longest >= target) return ((int)Math.Round(Width * (double)target / longest), (int)Math.Round(Height * (double)target / longest));
        var factor = target / longest;
        return (Width * factor, Height * factor);
    }
}
