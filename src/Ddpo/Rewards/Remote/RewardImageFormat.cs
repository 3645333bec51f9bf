using Ddpo.Imaging;
using static TorchSharp.torch;

namespace Ddpo.Rewards.Remote;

/// <summary>How images are sent to a server: lossless PNG or JPEG (quality 95).</summary>
public enum RewardImageFormat
{
    /// <summary>PNG (lossless; the default).</summary>
    Png,

    /// <summary>JPEG at quality <see cref="JpegEncoding.RewardQuality"/> (smaller requests).</summary>
    Jpeg,
}

/// <summary>Encodes reward batches as PNG or JPEG files for HTTP requests.</summary>
internal static class RewardImageEncoding
{
    /// <summary>Parses a config value (<c>png</c> or <c>jpeg</c>).</summary>
    public static RewardImageFormat Parse(string value, string key) => value switch
    {
        "png" => RewardImageFormat.Png,
        "jpeg" or "jpg" => RewardImageFormat.Jpeg,
        _ => throw new ArgumentException($"{key}: expected png or jpeg, got '{value}'"),
    };

    /// <summary>The MIME type of <paramref name="format"/>.</summary>
    public static string MimeType(RewardImageFormat format) => format == RewardImageFormat.Png ? "image/png" : "image/jpeg";

    /// <summary>Each image of [B, 3, H, W] in [0, 1] as an encoded file (8-bit RGB, <c>round(x * 255)</c>).</summary>
    public static byte[][] EncodeAll(Tensor images, RewardImageFormat format)
    {
        var rgb = JpegEncoding.ToRgbBytes(images);
        int b = (int)images.shape[0], h = (int)images.shape[2], w = (int)images.shape[3];
        int per = h * w * 3;
        var files = new byte[b][];
        Parallel.For(0, b, i => files[i] = format == RewardImageFormat.Jpeg
            ? JpegEncoding.Encode(rgb.AsSpan(i * per, per), w, h)
            : EncodePng(rgb.AsSpan(i * per, per), w, h));
        return files;
    }

    /// <summary>Encodes one RGB image (<paramref name="width"/> x <paramref name="height"/> x 3 bytes) as PNG.</summary>
    public static byte[] EncodePng(ReadOnlySpan<byte> rgb, int width, int height) =>
        ImageTensor.EncodePng(rgb, width, height);
}
