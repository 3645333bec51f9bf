using Ddpo.Base;
using Ddpo.Imaging.Jpeg;
using Ddpo.Rewards;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

public sealed class JpegRewardTests
{
    private static readonly IReadOnlyDictionary<string, string> NoMeta = new Dictionary<string, string>();

    internal static RewardBatch Batch(Tensor images) =>
        new(images, Enumerable.Repeat("a cat", (int)images.shape[0]).ToArray(), Enumerable.Repeat(NoMeta, (int)images.shape[0]).ToArray());

    /// <summary>Image 0 flat grey, image 1 uniform noise, both 64x64.</summary>
    internal static Tensor FlatAndNoise()
    {
        var gen = new Generator(1234);
        var flat = full(1, 3, 64, 64, 0.5f);
        var noise = rand(new long[] { 1, 3, 64, 64 }, generator: gen);
        return cat([flat, noise], 0);
    }

    [Fact]
    public async Task FlatImageIsMoreCompressibleThanNoise()
    {
        using var images = FlatAndNoise();
        var batch = Batch(images);
        var comp = (await new JpegCompressibilityReward().ScoreAsync(batch, CancellationToken.None)).Rewards;
        var incomp = (await new JpegIncompressibilityReward().ScoreAsync(batch, CancellationToken.None)).Rewards;
        Assert.True(comp[0] > comp[1], $"flat {comp[0]} should beat noise {comp[1]}");
        Assert.True(comp[0] < 0 && comp[1] < 0);
        Assert.Equal(incomp.Select(v => -v), comp);
        Assert.True(incomp[1] > 2 * incomp[0], $"noise {incomp[1]} kB should be much larger than flat {incomp[0]} kB");
    }

    [Fact]
    public async Task SizesAreKilobytesOfThePilJpegOfTheRoundedPixels()
    {
        using var images = FlatAndNoise();
        var kb = (await new JpegIncompressibilityReward().ScoreAsync(Batch(images), CancellationToken.None)).Rewards;
        var pixels = images.contiguous().data<float>().ToArray();
        for (int b = 0; b < 2; b++)
        {
            // Independent path: per-pixel round(x * 255) into [H, W, 3] bytes, encoded at quality 95.
            var rgb = new byte[64 * 64 * 3];
            for (int y = 0; y < 64; y++)
            {
                for (int x = 0; x < 64; x++)
                {
                    for (int c = 0; c < 3; c++)
                    {
                        rgb[(y * 64 + x) * 3 + c] = (byte)Math.Clamp(MathF.Round(pixels[((b * 3 + c) * 64 + y) * 64 + x] * 255f), 0, 255);
                    }
                }
            }
            var jpeg = PilJpegEncoder.Encode(rgb, 64, 64, 95);
            Assert.Equal((float)(jpeg.Length / 1000.0), kb[b]);
        }
    }

    [Fact]
    public void ConversionRoundsAndClampsLikeDdpoPytorch()
    {
        using var img = tensor(new float[] { -0.2f, 1.3f, 0.5f, 0.1f, 0.998f, 0.0f }).reshape(1, 3, 1, 2);
        var rgb = JpegEncoding.ToRgbBytes(img);
        // [B, H, W, 3]: pixel (0,0) = channels (-0.2, 0.5, 0.998), pixel (0,1) = (1.3, 0.1, 0.0)
        Assert.Equal(new byte[] { 0, 128, 254, 255, 26, 0 }, rgb);
    }

    [Fact]
    public async Task WeightedSumAddsWeightedComponentsAndReportsEach()
    {
        using var images = FlatAndNoise();
        var batch = Batch(images);
        var constant = new ConstantReward("const", [1f, 3f]);
        var weighted = new WeightedSumReward([(new JpegCompressibilityReward(), 2.0), (constant, -0.5)]);
        var result = await weighted.ScoreAsync(batch, CancellationToken.None);
        var jpeg = (await new JpegCompressibilityReward().ScoreAsync(batch, CancellationToken.None)).Rewards;
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(2.0 * jpeg[i] - 0.5 * constant.Values[i], result.Rewards[i], 1e-4);
        }
        Assert.Equal(jpeg, result.Details![RewardNames.JpegCompressibility]);
        Assert.Equal(constant.Values, result.Details["const"]);
        Assert.Equal(["const/raw"], result.Details.Keys.Where(k => k.Contains('/')));
    }

    [Fact]
    public void RegistryCreatesBuiltinsAndRegisteredRewards()
    {
        var registry = new RewardRegistry();
        Assert.IsType<JpegCompressibilityReward>(registry.Create("jpeg_compressibility"));
        Assert.IsType<JpegIncompressibilityReward>(registry.Create("jpeg_incompressibility"));
        var e = Assert.Throws<ConfigException>(() => registry.Create("aesthetic_score"));
        Assert.Contains("aesthetic_score", e.Message);
        registry.Register("aesthetic_score", () => new ConstantReward("aesthetic_score", [5f]));
        Assert.Equal("aesthetic_score", registry.Create("aesthetic_score").Name);
        var combo = Assert.IsType<WeightedSumReward>(registry.Create("weighted", new Dictionary<string, double>
        {
            ["aesthetic_score"] = 1.0,
            ["jpeg_compressibility"] = 0.1,
        }));
        Assert.Equal(2, combo.Components.Count);
        Assert.Throws<ConfigException>(() => registry.Create("weighted", new Dictionary<string, double> { ["nope"] = 1 }));
    }

    [Fact]
    public void FiniteMaskFlagsNanAndInfinities()
    {
        var mask = RewardChecks.Finite([1f, float.NaN, float.PositiveInfinity, 2f, float.NegativeInfinity]);
        Assert.Equal([true, false, false, true, false], mask.IsFinite);
        Assert.Equal(3, mask.NonFiniteCount);
        Assert.Equal([0, 3], mask.FiniteIndices);
    }

    internal sealed class ConstantReward(string name, float[] values) : IRewardFunction
    {
        public float[] Values => values;
        public string Name => name;

        public Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct) =>
            Task.FromResult(new RewardResult(values.Take(batch.Count).ToArray(), new Dictionary<string, float[]> { ["raw"] = values }));
    }
}
