using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Pipelines;
using Ddpo.Policies;
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
/// The gradients of reward backpropagation on the tiny pixel-space pipeline (no VAE: the decode is x/2 + 1/2, clamped):
/// gradient checkpointing gives the gradients of the plain backward pass (parameters and input latents), and the
/// DRaFT-K loss's gradient matches central finite differences in float64.
/// </summary>
[Collection("training")]
public sealed class RewardBackpropGradientTests(ITestOutputHelper output)
{
    private static DdpoConfig Config(params string[] extra) => DdpoConfig.Load(null, null,
    [
        "algorithm=\"draft\"", "reward_fn=\"brightness\"", "sample.num_steps=3", "sample.eta=1.0", "sample.guidance_scale=3.0",
        "sample.batch_size=2", "train.batch_size=2", "device=\"cpu\"", .. extra,
    ]);

    private static List<Tensor> Gradients(IReadOnlyList<Parameter> parameters) =>
        parameters.Select(p => p.grad is { } g ? g.detach().clone() : zeros_like(p)).ToList();

    /// <summary>
    /// One checkpointed UNet call against the plain one: the same output, the same gradient of a weighted sum of it with
    /// respect to every UNet parameter and to the input latents. The recomputation runs the same float32 kernels on the
    /// same values, so the gradients agree to float32 rounding of the accumulation order (measured: max |diff| 0).
    /// </summary>
    [Fact]
    public void CheckpointedCallGivesThePlainCallsGradients()
    {
        using var scope = NewDisposeScope();
        using var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
        var policy = pipeline.Policy;
        var weights = TrainableWeights.Full(policy.Denoiser);
        using var condition = policy.Encode(["a cat", "a dog"]);
        var gen = new Generator(3);
        var x0 = randn([2, 3, 16, 16], generator: gen);
        var w = randn([2, 3, 16, 16], generator: gen);
        var t = tensor(new long[] { 500, 500 });
        Tensor Call(Tensor x, IReadOnlyList<Tensor> time) => policy.Predict(x, time[0], condition, null, 1.0);

        (Tensor Out, Tensor InputGrad, List<Tensor> Grads) Run(bool checkpointed)
        {
            foreach (var p in weights.Parameters) p.grad = null;
            var x = x0.clone().requires_grad_(true);
            var y = checkpointed ? CheckpointedCall.Apply(Call, x, [t], weights.Parameters) : Call(x, [t]);
            (y * w).sum().backward();
            return (y.detach(), x.grad!.clone(), Gradients(weights.Parameters));
        }

        var plain = Run(false);
        var checkpointed = Run(true);
        Assert.Equal(0, (plain.Out - checkpointed.Out).abs().max().item<float>(), 6);
        double inputDiff = (plain.InputGrad - checkpointed.InputGrad).abs().max().item<float>();
        double inputScale = plain.InputGrad.abs().max().item<float>();
        double paramDiff = plain.Grads.Zip(checkpointed.Grads).Max(g => (g.First - g.Second).abs().max().item<float>());
        double paramScale = plain.Grads.Max(g => g.abs().max().item<float>());
        output.WriteLine($"input grad max |diff| {inputDiff:E3} (scale {inputScale:E3}); parameter grads max |diff| {paramDiff:E3} (scale {paramScale:E3})");
        Assert.True(inputScale > 0 && paramScale > 0, "the gradients are zero: the test would not see a difference");
        Assert.True(inputDiff <= 1e-5 * inputScale, $"input gradient differs by {inputDiff:E3}");
        Assert.True(paramDiff <= 1e-5 * paramScale, $"parameter gradients differ by {paramDiff:E3}");
        // Every parameter the plain pass reaches gets its gradient through the checkpoint.
        Assert.Equal(plain.Grads.Count(g => g.abs().max().item<float>() > 0), checkpointed.Grads.Count(g => g.abs().max().item<float>() > 0));
    }

    /// <summary>
    /// The whole DRaFT-K loss (K = 2 of 3 steps, guided, eta 1) with and without checkpointing: the same loss and the same
    /// gradients of every UNet parameter (the checkpointed steps' inputs carry the previous step's graph).
    /// </summary>
    [Fact]
    public void DraftLossHasTheSameGradientsWithAndWithoutCheckpointing()
    {
        using var scope = NewDisposeScope();
        using var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
        var policy = pipeline.Policy;
        var weights = TrainableWeights.Full(policy.Denoiser);
        using var condition = policy.Encode(["a cat", "a dog"]);
        using var one = policy.Encode([""]);
        using var unconditional = one.Expand(2);

        (double Loss, List<Tensor> Grads) Run(bool checkpointing)
        {
            var config = Config("draft.k=2", $"draft.checkpointing={(checkpointing ? "true" : "false")}");
            var algorithm = new RewardBackprop(policy, config, ImageStatisticReward.Brightness(), weights.Parameters);
            foreach (var p in weights.Parameters) p.grad = null;
            using var gen = new Generator(11);
            var loss = algorithm.Loss(new BackpropBatch(["a cat", "a dog"], condition, unconditional, gen));
            Assert.Equal(2, loss.GradientSteps);
            loss.Loss.backward();
            return (loss.Loss.item<float>(), Gradients(weights.Parameters));
        }

        var plain = Run(false);
        var checkpointed = Run(true);
        double diff = plain.Grads.Zip(checkpointed.Grads).Max(g => (g.First - g.Second).abs().max().item<float>());
        double scale = plain.Grads.Max(g => g.abs().max().item<float>());
        output.WriteLine($"loss {plain.Loss} vs {checkpointed.Loss}; gradients max |diff| {diff:E3} of max {scale:E3}");
        Assert.Equal(plain.Loss, checkpointed.Loss, 6);
        Assert.True(scale > 0);
        Assert.True(diff <= 1e-5 * scale, $"gradients differ by {diff:E3} (max {scale:E3})");
    }

    /// <summary>
    /// The DRaFT-K loss's gradient (K = 3 of 3 steps, so the truncation stops nothing and the gradient is the loss's exact
    /// one; checkpointed, guided, eta 1 with the batch's fixed noise) with respect to single UNet weights, against central
    /// differences (h = 1e-5) of the loss, in float64. (With K below the step count DRaFT's gradient ignores, by design,
    /// the weights' effect on the steps before the last K: finite differences see it, so they check the full chain.) Central differences err by
    /// O(h^2 f''') ~ 1e-10 and by rounding eps|f|/h ~ 1e-11 here, so a relative error of 1e-5 (plus 1e-9 absolute) leaves
    /// margin while any missing path (a step or the checkpoint's parameter gradient) would be off by far more.
    /// </summary>
    [Fact]
    public void DraftLossGradientMatchesFiniteDifferencesInFloat64()
    {
        using var scope = NewDisposeScope();
        using var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel, dtype: ScalarType.Float64);
        var policy = pipeline.Policy;
        // Every float64 weight trainable (a run trains float32 weights; TrainableWeights refuses others).
        var parameters = policy.Denoiser.parameters().ToList();
        foreach (var p in parameters) p.requires_grad = true;
        using var condition = policy.Encode(["a cat", "a dog"]);
        using var one = policy.Encode([""]);
        using var unconditional = one.Expand(2);
        var algorithm = new RewardBackprop(policy, Config("draft.k=3"), new Float64Brightness(), parameters);

        double Loss(bool backward)
        {
            using var inner = NewDisposeScope();
            using var gen = new Generator(11);
            var loss = algorithm.Loss(new BackpropBatch(["a cat", "a dog"], condition, unconditional, gen));
            Assert.Equal(ScalarType.Float64, loss.Loss.dtype);
            if (backward) loss.Loss.backward();
            return loss.Loss.item<double>();
        }

        foreach (var p in parameters) p.grad = null;
        Loss(backward: true);
        var named = policy.Denoiser.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter);
        // Weights of the first, a middle and the last layer (the gradient crosses the whole UNet and both trained steps).
        string[] names = [named.Keys.First(k => k.EndsWith("weight")), named.Keys.Where(k => k.Contains("attn") && k.EndsWith("weight")).First(), "conv_out.weight"];
        const double h = 1e-5;
        foreach (var name in names)
        {
            var p = named[name];
            var flat = p.detach().view(-1);
            {
                long index = flat.shape[0] / 2;
                double analytic = p.grad!.view(-1)[index].item<double>();
                double original = flat[index].item<double>();
                using (no_grad()) flat[index] = original + h;
                double plus = Loss(false);
                using (no_grad()) flat[index] = original - h;
                double minus = Loss(false);
                using (no_grad()) flat[index] = original;
                double numeric = (plus - minus) / (2 * h);
                double error = Math.Abs(analytic - numeric);
                output.WriteLine($"{name}[{index}]: analytic {analytic:E6} numeric {numeric:E6} |diff| {error:E2}");
                Assert.True(error <= 1e-5 * Math.Abs(numeric) + 1e-9, $"{name}[{index}]: analytic {analytic:E8}, finite differences {numeric:E8}");
            }
        }
        Assert.Contains(names, n => Math.Abs(named[n].grad!.abs().max().item<double>()) > 1e-6);
    }

    /// <summary>Brightness (mean luminance) in the images' own dtype: the float64 check must not round through float32.</summary>
    private sealed class Float64Brightness : IDifferentiableReward
    {
        public string Name => "brightness_f64";

        public Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct) => throw new NotSupportedException();

        public Tensor ScoreDifferentiable(Tensor images, IReadOnlyList<string> prompts) =>
            (0.299 * images[.., 0] + 0.587 * images[.., 1] + 0.114 * images[.., 2]).flatten(1).mean([1L]);
    }

    /// <summary>A reward without a gradient, or a weighted sum with one, is a ConfigException naming the key.</summary>
    [Fact]
    public void NonDifferentiableRewardsAreNamedConfigErrors()
    {
        var config = Config();
        var e = Assert.Throws<ConfigException>(() => DifferentiableRewards.Require(new JpegCompressibilityReward(), config));
        Assert.Contains("reward_fn", e.Message);
        Assert.Contains("not differentiable", e.Message);
        var sum = new WeightedSumReward([(ImageStatisticReward.Brightness(), 1.0), (new JpegCompressibilityReward(), 0.5)]);
        var weighted = Assert.Throws<ConfigException>(() => DifferentiableRewards.Require(sum, config));
        Assert.Contains("rewards", weighted.Message);
        Assert.Contains("jpeg_compressibility", weighted.Message);
        var ok = new WeightedSumReward([(ImageStatisticReward.Brightness(), 1.0), (ImageStatisticReward.Contrast(), 0.5)]);
        Assert.Same(ok, DifferentiableRewards.Require(new WatchedReward(ok, []), config));
        // The weighted sum's differentiable score is the sum of its components'.
        using var images = rand([2, 3, 8, 8], generator: new Generator(2));
        var expected = ImageStatisticReward.Brightness().ScoreDifferentiable(images, ["a", "b"]) + 0.5 * ImageStatisticReward.Contrast().ScoreDifferentiable(images, ["a", "b"]);
        Assert.True(ok.ScoreDifferentiable(images, ["a", "b"]).allclose(expected, 1e-6, 1e-7));
        Assert.Throws<ConfigException>(() => Config("draft.k=4"));
        Assert.Throws<ConfigException>(() => Config("algorithm=\"refl\"", "refl.min_step=1", "refl.max_step=3"));
        Assert.Throws<ConfigException>(() => Config("algorithm=\"alignprop\"", "alignprop.min_k=2", "alignprop.max_k=1"));
    }
}
