using Ddpo.Models.Lora;
using Ddpo.Models.Unet;
using Ddpo.Pipelines;
using Ddpo.Schedulers;
using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

/// <summary>
/// Why fp16 DDPO needs loss scaling: LoRA gradients of one realistic DDPO-IS micro-step on the tiny pixel UNet
/// in fp16, with and without <see cref="LossScaler"/>, against the same step in fp32.
/// </summary>
public sealed class HalfPrecisionGradientTests(ITestOutputHelper output)
{
    // Stable Diffusion's UNet output has 4x64x64 latent elements, and ddpo-pytorch's compressibility preset divides
    // each micro-step's loss by gradient_accumulation_steps x timesteps = 2 x 50 (accelerate's accumulation). The
    // log-probability is a mean over elements, so the gradient per element at the UNet output is
    // ~1 / (elements x micro-steps): 1e-7..1e-6 in that setting. Our tiny model has only 3x16x16 elements, so its
    // gradients are 21x larger; the loss is scaled by that ratio (and the micro-step divisor) to reproduce the
    // regime in which fp16 gradients underflow (fp16's smallest normal number is 6.1e-5, its smallest subnormal 6e-8).
    private const double SdElements = 4 * 64 * 64;
    private const double SdMicroStepsPerOptimizerStep = 2 * 50;

    private sealed record Gradients(Tensor Flat, double OutputGradientMedian, double ZeroFraction);

    private static Gradients LoraGradients(ScalarType dtype, LossScaler scaler)
    {
        using var unet = UNet2DConditionModel.FromPretrained(Path.Combine(TinyModels.Pixel, "unet"), dtype, CPU);
        foreach (var p in unet.parameters()) p.requires_grad = false;
        using var lora = LoraAdapters.Attach(unet, rank: 4, alpha: 4, gen: new Generator(5));
        using var scope = NewDisposeScope();
        using (no_grad())
        {
            // Up weights as after some training (fresh adapters have up = 0, which would zero every down gradient).
            var gen = new Generator(6);
            foreach (var p in lora.Parameters.Where((_, i) => i % 2 == 1)) p.copy_(randn(p.shape, generator: gen) * 0.05);
        }
        using var scheduler = new DdimScheduler(DdimSchedulerConfig.StableDiffusion());
        scheduler.SetTimesteps(20);
        var g = new Generator(7);
        long batch = 2, size = unet.Config.SampleSize ?? 16, channels = unet.Config.InChannels;
        var latents = randn([batch, channels, size, size], generator: g);
        var next = latents * 0.95 + randn([batch, channels, size, size], generator: g) * 0.1;
        long textDim = unet.Config.CrossAttentionDim[0];
        var embeds = randn([batch, 8, textDim], generator: g);
        var negative = randn([batch, 8, textDim], generator: g);
        var t = full([batch], 501L, dtype: ScalarType.Int64);
        var advantages = randn([batch], generator: g).clamp(-5, 5);

        var eps = GuidedNoisePredictor.Predict(unet, latents, t, embeds, negative, 5.0, dtype);
        eps.retain_grad();
        var step = scheduler.Step(eps, t, latents, 1.0, prevSample: next);
        var (loss, _, _) = PolicyLoss.DdpoIs(step.LogProb, step.LogProb.detach(), advantages, clipRange: 1e-4, advClipMax: 5);
        double elements = channels * size * size;
        var microStepLoss = loss * (elements / SdElements) / SdMicroStepsPerOptimizerStep;
        scaler.Scaled(microStepLoss).backward();
        Assert.True(scaler.Unscale(lora.Parameters), "gradients must be finite");
        var flat = cat(lora.Parameters.Select(p => p.grad!.flatten()).ToList());
        // The gradient reaching the UNet's (conditional) output is guidance x dL/d(eps).
        double median = (eps.grad! * 5.0).abs().flatten().median().item<float>() / scaler.Scale;
        double zeros = flat.eq(0).to(ScalarType.Float32).mean().item<float>();
        return new Gradients(flat.detach().clone().MoveToOuterDisposeScope(), median, zeros);
    }

    private static double RelativeError(Tensor actual, Tensor expected) =>
        (actual - expected).norm().item<float>() / expected.norm().item<float>();

    [Fact]
    public void ScaledFp16LoraGradientsMatchFp32AndUnscaledOnesDoNot()
    {
        using var scope = NewDisposeScope();
        var reference = LoraGradients(ScalarType.Float32, new LossScaler(enabled: false));

        var scaled = LoraGradients(ScalarType.Float16, new LossScaler(enabled: true));
        var unscaled = LoraGradients(ScalarType.Float16, new LossScaler(enabled: false));
        double scaledError = RelativeError(scaled.Flat, reference.Flat);
        double unscaledError = RelativeError(unscaled.Flat, reference.Flat);
        output.WriteLine($"gradient at the UNet output (median |.|): fp32 {reference.OutputGradientMedian:G3}");
        output.WriteLine($"LoRA gradients vs fp32: fp16 + loss scaling {scaledError:G3}, fp16 without {unscaledError:G3} " +
            $"(zero elements: fp32 {reference.ZeroFraction:P1}, scaled {scaled.ZeroFraction:P1}, unscaled {unscaled.ZeroFraction:P1})");

        Assert.InRange(reference.OutputGradientMedian, 1e-8, 2e-6); // the DDPO regime described above
        Assert.True(scaledError < 1e-2, $"with loss scaling the fp16 LoRA gradients are {scaledError:G3} (relative) from fp32's");
        Assert.True(unscaledError > 0.2, $"without loss scaling the fp16 LoRA gradients should be far off (underflow), but are only {unscaledError:G3} from fp32's");
    }
}
