using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Pipelines;
using Ddpo.Rewards;
using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

/// <summary>
/// DiffusionNFT's pieces against hand computations in float64 (NVlabs/DiffusionNFT scripts/train_nft_sd3.py at
/// 24af555): the loss and its gradient, the reward weight, the old policy's decay schedule and update, the swap of a
/// weight copy into the parameters, and the configurations it refuses.
/// </summary>
public sealed class NftLossTests(ITestOutputHelper output)
{
    private const int B = 3, C = 2, H = 2, W = 2, D = C * H * W;

    /// <summary>
    /// The loss of train_nft_sd3.py, written out element by element in double: r from the clipped advantage, v+ and v-,
    /// their x0 predictions, each squared error over its own mean absolute error, (r L+ + (1 - r) L-) / beta times M,
    /// averaged, plus kl_coef mean((v_theta - v_ref)^2); and its gradient with respect to v_theta, the adaptive weights
    /// held constant (they are detached). Everything is float64, so the only differences are summation order: 1e-12.
    /// </summary>
    [Theory]
    [InlineData(1.0, 1e-4)]
    [InlineData(0.1, 0.0)]
    [InlineData(0.5, 0.3)]
    public void LossAndGradientMatchAHandComputation(double beta, double klCoef)
    {
        const double M = 5;
        var rng = new Random(11);
        double[] Rand(int n, double scale) => Enumerable.Range(0, n).Select(_ => (rng.NextDouble() * 2 - 1) * scale).ToArray();
        var x0 = Rand(B * D, 1);
        var noise = Rand(B * D, 1.5);
        double[] sigma = [0.9, 0.35, 0.05];
        double[] adv = [7.5, -1.2, 2.0]; // the first is clipped to M: r = 1
        var vTheta = Rand(B * D, 1);
        var vOld = vTheta.Select(v => v + (rng.NextDouble() - 0.5) * 0.2).ToArray();
        var vRef = vTheta.Select(v => v + (rng.NextDouble() - 0.5) * 0.5).ToArray();
        var xt = new double[B * D];
        for (int b = 0; b < B; b++)
            for (int d = 0; d < D; d++) xt[b * D + d] = (1 - sigma[b]) * x0[b * D + d] + sigma[b] * noise[b * D + d];

        double expected = 0;
        var grad = new double[B * D];
        for (int b = 0; b < B; b++)
        {
            double r = Math.Clamp(Math.Clamp(adv[b], -M, M) / M / 2 + 0.5, 0, 1);
            var ep = new double[D];
            var en = new double[D];
            for (int d = 0; d < D; d++)
            {
                int i = b * D + d;
                double pos = beta * vTheta[i] + (1 - beta) * vOld[i];
                double neg = (1 + beta) * vOld[i] - beta * vTheta[i];
                ep[d] = xt[i] - sigma[b] * pos - x0[i];
                en[d] = xt[i] - sigma[b] * neg - x0[i];
            }
            double wp = Math.Max(ep.Average(Math.Abs), NftLoss.MinWeight), wn = Math.Max(en.Average(Math.Abs), NftLoss.MinWeight);
            double lp = ep.Average(e => e * e) / wp, ln = en.Average(e => e * e) / wn;
            expected += M * (r * lp / beta + (1 - r) * ln / beta) / B;
            double kl = 0;
            for (int d = 0; d < D; d++)
            {
                int i = b * D + d;
                kl += (vTheta[i] - vRef[i]) * (vTheta[i] - vRef[i]) / D;
                // d ep / d vTheta = -sigma beta, d en / d vTheta = +sigma beta
                grad[i] = M / beta / B * (r * 2 * ep[d] * -sigma[b] * beta / (D * wp) + (1 - r) * 2 * en[d] * sigma[b] * beta / (D * wn))
                    + klCoef * 2 * (vTheta[i] - vRef[i]) / (B * D);
            }
            expected += klCoef * kl / B;
        }

        Tensor T(double[] v) => tensor(v, dtype: ScalarType.Float64).view(B, C, H, W);
        using var scope = NewDisposeScope();
        var theta = T(vTheta).requires_grad_(true);
        var terms = NftLoss.Compute(T(xt), T(x0), tensor(sigma), theta, T(vOld), klCoef > 0 ? T(vRef) : null, tensor(adv), beta, M, klCoef);
        Assert.Equal(ScalarType.Float64, terms.Loss.dtype);
        Assert.Equal(expected, terms.Loss.item<double>(), 1e-12);
        Assert.Equal(klCoef > 0, terms.Kl is not null);
        terms.Loss.backward();
        var g = theta.grad!.flatten().data<double>().ToArray();
        output.WriteLine($"loss {expected:R}: error {Math.Abs(terms.Loss.item<double>() - expected):E2}; gradient max error {g.Select((x, i) => Math.Abs(x - grad[i])).Max():E2}");
        for (int i = 0; i < g.Length; i++) Assert.Equal(grad[i], g[i], 1e-12);
    }

    [Fact]
    public void RewardWeightIsTheClippedAdvantageMappedOntoZeroToOne()
    {
        using var a = tensor(new double[] { -10, -5, -2.5, 0, 2.5, 5, 7 });
        using var r = NftLoss.RewardWeight(a, 5);
        Assert.Equal(new double[] { 0, 0, 0.25, 0.5, 0.75, 1, 1 }, r.data<double>().ToArray());
    }

    [Fact]
    public void OldPolicyDecayFollowsReturnDecay()
    {
        Assert.Equal(0.0, NftOldPolicy.Decay(500, 0));
        Assert.Equal(0.0, NftOldPolicy.Decay(0, 1));
        Assert.Equal(0.1, NftOldPolicy.Decay(100, 1), 1e-15);
        Assert.Equal(0.5, NftOldPolicy.Decay(501, 1));
        Assert.Equal(0.0, NftOldPolicy.Decay(74, 2));
        Assert.Equal(0.0, NftOldPolicy.Decay(75, 2));
        Assert.Equal(0.1875, NftOldPolicy.Decay(100, 2), 1e-15);
        Assert.Equal(0.999, NftOldPolicy.Decay(1000, 2));
    }

    /// <summary>old = decay old + (1 - decay) theta after the epoch, with decay of the run's optimizer steps (0.25 at 250 for type 1).</summary>
    [Fact]
    public void OldPolicyUpdateAndSwapAreExact()
    {
        var p = new Parameter(tensor(new float[] { 1, 2, 3, 4 }));
        IReadOnlyList<Parameter> ps = [p];
        using var old = new NftOldPolicy(ps, decayType: 1);
        using (no_grad()) p.copy_(tensor(new float[] { 5, 6, 7, 8 }));
        old.Update(250);
        float[] expected = [0.25f * 1 + 0.75f * 5, 0.25f * 2 + 0.75f * 6, 0.25f * 3 + 0.75f * 7, 0.25f * 4 + 0.75f * 8];
        Assert.Equal(expected, old.Weights.Values[0].data<float>().ToArray());
        using (old.Applied())
        {
            Assert.Equal(expected, p.data<float>().ToArray());
        }
        Assert.Equal(new float[] { 5, 6, 7, 8 }, p.data<float>().ToArray());
    }

    /// <summary>The NFT presets carry train_nft_sd3.py's values, and the [nft] keys survive the resolved config.toml.</summary>
    [Fact]
    public void PresetCarriesDiffusionNftValuesAndTheKeysRoundTrip()
    {
        var c = DdpoConfig.Load(null, "sd3.5-compressibility-nft", ["nft.beta=0.1", "nft.decay_type=2", "nft.timestep_distribution=\"uniform\""]);
        Assert.Equal(TrainingAlgorithm.Nft, c.Algorithm);
        Assert.Equal(0.0, c.Sample.Eta);
        Assert.Equal(1.0, c.Sample.GuidanceScale);
        Assert.Equal(24, c.Sample.GroupSize);
        Assert.Equal(1, c.Counts.OptimizerStepsPerEpoch);
        Assert.True(c.Train.Ema);
        Assert.Equal(1, c.Train.EmaUpdateInterval);
        Assert.Equal(1e-4, c.Nft.KlCoef);
        var back = DdpoConfig.Parse(c.ToToml());
        Assert.Equal((0.1, 2, "uniform", 1e-4), (back.Nft.Beta, back.Nft.DecayType, back.Nft.TimestepDistribution, back.Nft.KlCoef));
        Assert.Equal(c.ComputeHash(), back.ComputeHash());
        var defaults = new DdpoConfig();
        Assert.Equal((1.0, 1, "schedule", 1e-4), (defaults.Nft.Beta, defaults.Nft.DecayType, defaults.Nft.TimestepDistribution, defaults.Nft.KlCoef));
        Assert.Equal((false, 0.9, 8), (defaults.Train.Ema, defaults.Train.EmaDecay, defaults.Train.EmaUpdateInterval));
    }

    [Fact]
    public void NftRefusesTheUnetFamilyClassifierFreeGuidanceAndTheTransitionKl()
    {
        var dir = TestPaths.NewTempDir();
        try
        {
            using (var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel))
            {
                var e = Assert.Throws<ConfigException>(() => new DdpoTrainer(TinyTraining.Config("algorithm=nft", "sample.group_size=2"),
                    pipeline.Policy, Path.Combine(dir, "ddim"), false, ImageStatisticReward.Brightness()));
                Assert.Contains("algorithm = \"nft\" needs a flow-matching family", e.Message);
            }
            var model = Path.Combine(dir, "sd3");
            TinySd3Writer.Write(new TinyTransformerOptions { Seed = 1, SampleSize = 8 }, model);
            using (var pipeline = StableDiffusion3Pipeline.FromPretrained(model))
            {
                var config = NftTrainingTests.Config(1, ["sample.guidance_scale=4.5"]);
                var e = Assert.Throws<ConfigException>(() => new DdpoTrainer(config, ((ITextToImagePipeline)pipeline).Policy,
                    Path.Combine(dir, "cfg"), false, ImageStatisticReward.Brightness()));
                Assert.Contains("CFG-free", e.Message);
                Assert.Contains("sample.guidance_scale = 1", e.Message);
            }
            Assert.Contains("nft.kl_coef", Assert.Throws<ConfigException>(() => NftTrainingTests.Config(1, ["train.kl_coef=0.1"])).Message);
            Assert.Contains("sample.group_size", Assert.Throws<ConfigException>(() => NftTrainingTests.Config(1, ["sample.group_size=1"])).Message);
            Assert.Contains("nft.timestep_distribution", Assert.Throws<ConfigException>(() => NftTrainingTests.Config(1, ["nft.timestep_distribution=\"logit\""])).Message);
            Assert.Contains("nft.decay_type", Assert.Throws<ConfigException>(() => NftTrainingTests.Config(1, ["nft.decay_type=3"])).Message);
            Assert.Contains("nft.bet", Assert.Throws<ConfigException>(() => NftTrainingTests.Config(1, ["nft.bet=1.0"])).Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
