using Ddpo.Imaging;
using Ddpo.Imaging.Jpeg;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Rewards;

/// <summary>
/// Turns [B, 3, H, W] images in [0, 1] into 8-bit RGB the way ddpo-pytorch does
/// (<c>round(x * 255)</c> clamped to [0, 255]) and encodes them as JPEG byte for byte like PIL's
/// <c>Image.fromarray(rgb).save(buf, format="JPEG", quality=95)</c> (<see cref="PilJpegEncoder"/>). This is the one
/// JPEG encoder of every reward.
/// </summary>
internal static class JpegEncoding
{
    /// <summary>The JPEG quality ddpo-pytorch's compressibility rewards use.</summary>
    public const int RewardQuality = 95;

    /// <summary>Quantises images [B, 3, H, W] in [0, 1] to interleaved RGB bytes (see <see cref="ImageTensor.ToRgbBytes"/>).</summary>
    public static byte[] ToRgbBytes(Tensor images) => ImageTensor.ToRgbBytes(images);

    /// <summary>Encodes one image's interleaved RGB bytes as a JPEG at <paramref name="quality"/>, exactly as PIL does.</summary>
    public static byte[] Encode(ReadOnlySpan<byte> rgb, int width, int height, int quality = RewardQuality) =>
        PilJpegEncoder.Encode(rgb, width, height, quality);

    /// <summary>
    /// The JPEG size of each image in kilobytes (bytes / 1000, ddpo-pytorch's <c>buf.tell() / 1000</c>), at
    /// <paramref name="quality"/>.
    /// </summary>
    public static float[] SizesInKilobytes(Tensor images, int quality = RewardQuality)
    {
        var rgb = ToRgbBytes(images);
        int b = (int)images.shape[0], h = (int)images.shape[2], w = (int)images.shape[3];
        int per = h * w * 3;
        var sizes = new float[b];
        Parallel.For(0, b, i => sizes[i] = (float)(Encode(rgb.AsSpan(i * per, per), w, h, quality).Length / 1000.0));
        return sizes;
    }
}
