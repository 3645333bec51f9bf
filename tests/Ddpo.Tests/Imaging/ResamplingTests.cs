using System.Text.Json.Nodes;
using Ddpo.Imaging.Resampling;
using Ddpo.Models.Loading;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpo.Tests.Imaging;

/// <summary>
/// PIL's 8-bit resize (byte-exact), torchvision's tensor resize and the two centre-crop conventions against the
/// refenv/pil_resize fixtures (Pillow 9.4, torch 1.13 with torchvision's antialias default emulated).
/// </summary>
public sealed class ResamplingTests(ITestOutputHelper output)
{
    private static readonly string Folder = TestPaths.Fixture("refenv", "pil_resize");

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));

    private static JsonNode Meta() => JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "io.json")))!;

    private static IEnumerable<(int Image, int Target, int H, int W, int Th, int Tw)> Cases()
    {
        var cases = Meta()["cases"]!.AsArray();
        for (int i = 0; i < cases.Count; i++)
        {
            var hw = cases[i]!["input_hw"]!.AsArray();
            var targets = cases[i]!["targets_hw"]!.AsArray();
            for (int j = 0; j < targets.Count; j++)
            {
                yield return (i, j, hw[0]!.GetValue<int>(), hw[1]!.GetValue<int>(), targets[j]![0]!.GetValue<int>(), targets[j]![1]!.GetValue<int>());
            }
        }
    }

    private static byte[] Bytes(Tensor t) => t.contiguous().data<byte>().ToArray();

    [Fact]
    public void PilResizeIsByteExact()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        int checkedCount = 0;
        foreach (var (i, j, h, w, th, tw) in Cases())
        {
            foreach (var (name, filter) in new[] { ("bicubic", ResampleFilter.Bicubic), ("bilinear", ResampleFilter.Bilinear) })
            {
                var actual = PilResize.Resize(Bytes(io[$"image.{i}"]), w, h, 3, tw, th, filter);
                var expected = Bytes(io[$"pil.{name}.{i}.{j}"]);
                int differing = expected.Zip(actual).Count(p => p.First != p.Second);
                Assert.True(differing == 0, $"pil.{name}.{i}.{j} ({h}x{w} -> {th}x{tw}): {differing} of {expected.Length} bytes differ");
                checkedCount++;
            }
            var gray = PilResize.Resize(Bytes(io[$"image_l.{i}"]), w, h, 1, tw, th, ResampleFilter.Bicubic);
            Assert.Equal(Bytes(io[$"pil_l.bicubic.{i}.{j}"]), gray);
        }
        Assert.Equal(22, checkedCount);
    }

    // torch computes in float32 from float32 weights, we from float64 weights rounded to float32 once: values are
    // O(1), so the difference is a few float32 ulps (~1e-7); 2e-6 still fails on any wrong tap (errors ~1e-2).
    private const double FloatAtol = 2e-6;

    [Fact]
    public void TensorResizeMatchesTorchvision()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        double worst = 0;
        int checkedCount = 0;
        foreach (var (i, j, h, w, th, tw) in Cases().Where(c => c.Target < 2))
        {
            var x = io[$"image.{i}"].permute(2, 0, 1).to(ScalarType.Float32) / 255;
            foreach (var (key, filter, aa) in new[] { ("bicubic_aa", ResampleFilter.Bicubic, true), ("bicubic_noaa", ResampleFilter.Bicubic, false), ("bilinear_aa", ResampleFilter.Bilinear, true) })
            {
                var expected = io[$"tv.{key}.{i}.{j}"];
                var actual = TensorResize.Resize(x, th, tw, filter, aa);
                worst = Math.Max(worst, (expected - actual).abs().max().item<float>());
                TensorAssert.Close(expected, actual, FloatAtol, 0, $"tv.{key}.{i}.{j}");
                checkedCount++;
            }
        }
        output.WriteLine($"tensor resize: max abs error {worst:g3} over {checkedCount} cases");
        Assert.Equal(18, checkedCount);
    }

    [Fact]
    public void TensorResizeIsDifferentiableAndBatched()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var x = (io["image.0"].permute(2, 0, 1).to(ScalarType.Float32) / 255).unsqueeze(0).expand(2, -1, -1, -1).clone().requires_grad_(true);
        var y = TensorResize.Resize(x, 20, 32, ResampleFilter.Bicubic);
        Assert.Equal(new long[] { 2, 3, 20, 32 }, y.shape);
        TensorAssert.Close(io["tv.bicubic_aa.0.0"], y[1], FloatAtol, 0, "batched");
        y.sum().backward();
        // d sum / d x = column sums of M_h times column sums of M_w: positive and not all equal for a 23x37 -> 20x32 resize.
        var g = x.grad!;
        Assert.True(g.abs().sum().item<float>() > 0);
        Assert.True((g.max() - g.min()).item<float>() > 1e-3);
    }

    [Fact]
    public void CentreCropOffsetsMatchBothConventions()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        int differ = 0;
        foreach (var c in Meta()["center_crops"]!.AsArray())
        {
            int i = c!["image"]!.GetValue<int>(), s = c["S"]!.GetValue<int>();
            var (h, w) = ((int)io[$"image.{i}"].shape[0], (int)io[$"image.{i}"].shape[1]);
            var (rh, rw) = ResizeTarget.ShortestEdge(h, w, s);
            var resizedHw = c["resized_hw"]!.AsArray();
            Assert.Equal((resizedHw[0]!.GetValue<int>(), resizedHw[1]!.GetValue<int>()), (rh, rw));
            var resized = tensor(PilResize.Resize(Bytes(io[$"image.{i}"]), w, h, 3, rw, rh, ResampleFilter.Bicubic)).reshape(rh, rw, 3);
            foreach (var (kind, top, left) in new[]
            {
                ("hf", CenterCrop.TransformersOffset(rh, s), CenterCrop.TransformersOffset(rw, s)),
                ("tv", CenterCrop.TorchvisionOffset(rh, s), CenterCrop.TorchvisionOffset(rw, s)),
            })
            {
                var expectedOffsets = c[$"{kind}_top_left"]!.AsArray();
                Assert.Equal((expectedOffsets[0]!.GetValue<int>(), expectedOffsets[1]!.GetValue<int>()), (top, left));
                Assert.Equal(Bytes(io[$"crop.{kind}.{i}.{s}"]), Bytes(resized.narrow(0, top, s).narrow(1, left, s)));
            }
            if (CenterCrop.TransformersOffset(rw, s) != CenterCrop.TorchvisionOffset(rw, s) || CenterCrop.TransformersOffset(rh, s) != CenterCrop.TorchvisionOffset(rh, s)) differ++;
        }
        // The fixture includes sizes where the conventions disagree, so both branches are exercised.
        Assert.True(differ > 0);
        output.WriteLine($"{differ} crops where the conventions differ");
    }

    [Fact]
    public void LongestEdgeRoundsHalfToEven()
    {
        // 17x25 -> 20: 17 * 0.8 = 13.6 -> 14; 5x8 -> 4: 2.5 -> 2 (half to even), 8 -> 4.
        Assert.Equal((14, 20), ResizeTarget.LongestEdge(17, 25, 20));
        Assert.Equal((2, 4), ResizeTarget.LongestEdge(5, 8, 4));
        Assert.Equal((20, 29), ResizeTarget.ShortestEdge(20, 29, 20));
        Assert.Equal((29, 20), ResizeTarget.ShortestEdge(41, 28, 20));
    }
}
