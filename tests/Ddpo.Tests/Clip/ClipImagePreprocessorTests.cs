using Ddpo.Models.Clip;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Clip;

/// <summary>Shapes, crop placement and normalisation of the CLIP image preprocessing.</summary>
public sealed class ClipImagePreprocessorTests
{
    private static readonly double[] Mean = [0.48145466, 0.4578275, 0.40821073];
    private static readonly double[] Std = [0.26862954, 0.26130258, 0.27577711];

    [Fact]
    public void CropWithoutResizeTakesTheCentreColumnsAndNormalises()
    {
        // 4x8 image, shorter side already 4: no resize, the 4x4 crop starts at column (8-4)/2 = 2.
        var values = new float[1 * 3 * 4 * 8];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 8; x++)
                    values[(c * 4 + y) * 8 + x] = x / 10f + c / 100f;
        using var images = tensor(values, [1, 3, 4, 8]);
        using var output = new ClipImagePreprocessor(size: 4, cropSize: 4).Preprocess(images);
        Assert.Equal(new long[] { 1, 3, 4, 4 }, output.shape);
        var expected = new float[3 * 4 * 4];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 4; x++)
                    expected[(c * 4 + y) * 4 + x] = (float)(((x + 2) / 10.0 + c / 100.0 - Mean[c]) / Std[c]);
        using var want = tensor(expected, [1, 3, 4, 4]);
        TensorAssert.Close(want, output, atol: 1e-5, what: "cropped pixels");
    }

    [Fact]
    public void ResizeKeepsAspectAndConstantImagesStayConstant()
    {
        var pre = new ClipImagePreprocessor(size: 5, cropSize: 4);
        Assert.Equal((5L, 10L), pre.ResizedSize(10, 20));
        Assert.Equal((11L, 5L), pre.ResizedSize(23, 10)); // floor(5 * 23 / 10) = 11
        // A constant colour survives any antialiased resize; the output is then (colour - mean) / std.
        using var images = ones(2, 3, 10, 20) * tensor(new float[] { 0.2f, 0.5f, 0.9f }).view(1, 3, 1, 1);
        using var output = pre.Preprocess(images);
        Assert.Equal(new long[] { 2, 3, 4, 4 }, output.shape);
        for (int c = 0; c < 3; c++)
        {
            double colour = new[] { 0.2, 0.5, 0.9 }[c];
            using var channel = output[.., c];
            TensorAssert.Close(full_like(channel, (colour - Mean[c]) / Std[c]), channel, atol: 1e-5, what: $"channel {c}");
        }
    }

    [Fact]
    public void DownscaleIsSmoothAndInvalidInputIsRejected()
    {
        // A horizontal ramp stays a non-decreasing ramp after a 2x antialiased downscale.
        using var ramp = linspace(0, 1, 16).view(1, 1, 1, 16).expand(1, 3, 16, 16).contiguous();
        using var output = new ClipImagePreprocessor(size: 8, cropSize: 8).Preprocess(ramp);
        Assert.Equal(new long[] { 1, 3, 8, 8 }, output.shape);
        var row = output[0, 0, 3].data<float>().ToArray();
        for (int i = 1; i < row.Length; i++) Assert.True(row[i] >= row[i - 1] - 1e-6, $"column {i} decreases");
        Assert.Throws<ArgumentException>(() => new ClipImagePreprocessor(8, 8).Preprocess(zeros(1, 4, 8, 8)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClipImagePreprocessor(8, 9));
    }
}
