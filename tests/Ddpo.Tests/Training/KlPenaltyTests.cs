using Ddpo.Policies;
using Ddpo.Models.Lora;
using Ddpo.Models.Unet;
using Ddpo.Pipelines;
using Ddpo.Schedulers;
using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

public sealed class KlPenaltyTests
{
    private static UNet2DConditionConfig TinyUnet() => TinyPipelineWriter.UnetConfig(new TinyPipelineOptions
    {
        WithVae = false, SampleSize = 8, UnetChannels = [8, 16], AttentionHeads = 2, TextHiddenSize = 8,
    });

    [Fact]
    public void DisabledAdaptersGiveTheBaseOutputBitForBit()
    {
        manual_seed(11);
        using var unet = new UNet2DConditionModel(TinyUnet());
        var gen = new Generator(2);
        var x = randn(new long[] { 2, 3, 8, 8 }, generator: gen);
        var embeds = randn(new long[] { 2, 5, 8 }, generator: gen);
        var t = tensor(new long[] { 500, 300 });
        using var _ = no_grad();
        var baseOut = unet.forward(x, t, embeds);
        var lora = LoraAdapters.Attach(unet, 4, 4, gen: gen);
        foreach (var p in lora.Parameters.Where((_, i) => i % 2 == 1)) p.normal_(0, 0.5, generator: gen); // the up weights
        var adapted = unet.forward(x, t, embeds);
        Assert.False(adapted.equal(baseOut).all().item<bool>());
        using (lora.Disable())
        {
            Assert.True(unet.forward(x, t, embeds).equal(baseOut).all().item<bool>());
            using (lora.Disable()) { }
            Assert.True(unet.forward(x, t, embeds).equal(baseOut).all().item<bool>(), "an inner scope must restore the outer one's state");
        }
        Assert.True(unet.forward(x, t, embeds).equal(adapted).all().item<bool>());
    }

    [Fact]
    public void KlGradientMatchesFiniteDifferencesOnATinyUnet()
    {
        // The KL penalty of one recorded step, through a tiny UNet, the guidance and the DDIM mean, in float64: zero
        // against a frozen copy of the same weights, then after the weights move, autograd against central differences.
        manual_seed(3);
        using var unet = new UNet2DConditionModel(TinyUnet(), ScalarType.Float64);
        using var scheduler = new DdimScheduler(DdimSchedulerConfig.StableDiffusion());
        scheduler.SetTimesteps(5);
        using var policy = new StableDiffusionPolicy(unet, scheduler);
        using var reference = ReferencePolicy.FrozenCopy(policy);
        var options = new SamplingOptions { NumSteps = 5, GuidanceScale = 4.0, Eta = 1.0, FinalStep = DdimFinalStep.Ddpo };
        var gen = new Generator(4);
        var x = randn(new long[] { 2, 3, 8, 8 }, dtype: ScalarType.Float64, generator: gen);
        var next = randn(new long[] { 2, 3, 8, 8 }, dtype: ScalarType.Float64, generator: gen) * 0.1 + x * 0.9;
        var embeds = randn(new long[] { 2, 5, 8 }, dtype: ScalarType.Float64, generator: gen);
        var negative = randn(new long[] { 2, 5, 8 }, dtype: ScalarType.Float64, generator: gen);
        var t = tensor(new long[] { 601, 401 });
        Tensor Kl()
        {
            var eps = GuidedNoisePredictor.Predict(unet, x, t, embeds, negative, 4.0, ScalarType.Float64);
            var step = scheduler.Step(eps, t, x, 1.0, prevSample: next, finalStep: DdimFinalStep.Ddpo);
            var baseMean = reference.Mean(new TransitionBatch(x, next, t, StableDiffusionPolicy.Condition(embeds.alias()), StableDiffusionPolicy.Condition(negative.alias())), options);
            return ReferencePolicy.Kl(step.Mean, baseMean, step.Std).mean();
        }
        Assert.Equal(0.0, Kl().item<double>());
        using (no_grad())
        {
            foreach (var p in unet.parameters()) p.add_(randn(p.shape, dtype: ScalarType.Float64, generator: gen) * 0.02);
        }
        var weight = unet.named_parameters().First(p => p.name.EndsWith("attn2.to_q.weight")).parameter;
        unet.zero_grad();
        var kl = Kl();
        Assert.True(kl.item<double>() > 0);
        kl.backward();
        var analytic = weight.grad!.clone();
        const double h = 1e-6;
        foreach (var index in new long[] { 0, 5, 17 })
        {
            using var _ = no_grad();
            var flat = weight.view(-1);
            double original = flat[index].item<double>();
            flat[index] = original + h;
            double plus = Kl().item<double>();
            flat[index] = original - h;
            double minus = Kl().item<double>();
            flat[index] = original;
            double numeric = (plus - minus) / (2 * h);
            double a = analytic.view(-1)[index].item<double>();
            Assert.True(Math.Abs(a - numeric) <= 1e-9 + 1e-4 * Math.Abs(numeric), $"element {index}: autograd {a}, finite difference {numeric}");
        }
        Assert.True(analytic.abs().max().item<double>() > 0, "the gradient must not vanish");
    }

    [Fact]
    public void KlIsTheGaussianKlOfTheTwoTransitions()
    {
        // KL(N(m1, s^2 I) || N(m2, s^2 I)) per element is (m1 - m2)^2 / (2 s^2); averaged over the non-batch dimensions.
        var m1 = tensor(new[] { 1.0, 2.0, 0.0, 0.0 }).reshape(2, 2);
        var m2 = tensor(new[] { 0.0, 0.0, 3.0, 0.0 }).reshape(2, 2);
        var std = tensor(new[] { 2.0, 0.5 }).reshape(2, 1);
        var kl = ReferencePolicy.Kl(m1, m2, std);
        Assert.Equal((1.0 / 8 + 4.0 / 8) / 2, kl[0].item<double>(), 12);
        Assert.Equal((9.0 / 0.5) / 2, kl[1].item<double>(), 12);
    }
}

/// <summary>
/// The KL penalty's memory with LoRA: the base model runs without gradients, so what the backward pass keeps grows by
/// the base transition's mean, not by a second set of activations. Runs alone: the C heap is the whole process's.
/// </summary>
[Collection(AloneCollection.Name)]
public sealed class KlPenaltyMemoryTests(ITestOutputHelper output)
{
    [Fact]
    public void KlWithLoraKeepsNoSecondActivationSet()
    {
        using var pipeline = TextToImagePipeline.FromPretrained(TinyModels.Pixel);
        var weights = TrainableWeights.WithLora(pipeline.Unet, 4, 4, seed: 1);
        using (no_grad())
        {
            foreach (var p in weights.Parameters) p.normal_(0, 0.1);
        }
        using var reference = ReferencePolicy.WithAdaptersOff(pipeline.Policy, weights.Lora!);
        var options = new SamplingOptions { NumSteps = 4, GuidanceScale = 5.0, Eta = 1.0, FinalStep = DdimFinalStep.Ddpo };
        pipeline.Scheduler.SetTimesteps(4);
        using var embeds = pipeline.EncodePrompts(Enumerable.Repeat("a cat", 8).ToArray());
        using var negative = pipeline.EncodePrompts(Enumerable.Repeat("", 8).ToArray());
        var gen = new Generator(5);
        using var x = randn(new long[] { 8, 3, 16, 16 }, generator: gen);
        using var next = randn(new long[] { 8, 3, 16, 16 }, generator: gen) * 0.1 + x * 0.9;
        using var t = full(new long[] { 8 }, pipeline.Scheduler.Timesteps[1], ScalarType.Int64);

        // Bytes held between the forward pass and the backward pass of one training micro-step (the autograd graph).
        long Held(bool withKl)
        {
            using var scope = NewDisposeScope();
            GC.Collect();
            GC.WaitForPendingFinalizers();
            long before = HeapUsage.InUseBytes();
            var eps = pipeline.PredictNoise(x, t, embeds, negative, 5.0);
            var step = pipeline.Scheduler.Step(eps, t, x, 1.0, prevSample: next, finalStep: DdimFinalStep.Ddpo);
            var loss = step.LogProb.mean();
            if (withKl)
            {
                var baseMean = reference.Mean(new TransitionBatch(x, next, t, StableDiffusionPolicy.Condition(embeds.alias()), StableDiffusionPolicy.Condition(negative.alias())), options);
                loss = loss + 0.1 * ReferencePolicy.Kl(step.Mean, baseMean, step.Std).mean();
            }
            long held = HeapUsage.InUseBytes() - before;
            loss.backward();
            foreach (var p in weights.Parameters) p.grad?.zero_();
            return held;
        }
        Held(false);
        Held(true); // warm-up: the allocator's first use of each size
        long activations = Math.Min(Held(false), Held(false));
        long withKl = Math.Min(Held(true), Held(true));
        long mean = x.numel() * sizeof(float);
        output.WriteLine($"held until backward: without KL {activations / 1024.0:F0} KiB (one activation set), with KL {withKl / 1024.0:F0} KiB; " +
            $"difference {(withKl - activations) / 1024.0:F0} KiB; one base mean is {mean / 1024.0:F0} KiB");
        Assert.True(activations > 20 * mean, $"the activation set ({activations} bytes) looks too small to measure against");
        // The bound is one activation set; the base forward without gradients should keep far less.
        Assert.True(withKl - activations < activations / 4, $"the KL penalty keeps {withKl - activations} bytes more, one activation set is {activations}");
    }
}
