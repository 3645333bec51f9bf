using Ddpo.Models.Lora;
using Ddpo.Models.Unet;
using Ddpo.Pipelines;
using Ddpo.Schedulers;
using Ddpo.Training;
using static TorchSharp.torch;

namespace Ddpo.Diagnostics;

/// <summary>LoRA gradients of one DDPO-IS micro-step in one precision, against fp32 on the same batch.</summary>
/// <param name="Variant">fp32, fp16 (unscaled), fp16 + loss scaling, bf16.</param>
/// <param name="GradNorm">Global L2 norm of the LoRA gradients (after unscaling).</param>
/// <param name="RelativeError">|g - g_fp32| / |g_fp32| (0 for fp32 itself).</param>
/// <param name="ZeroFraction">Fraction of gradient elements that are exactly 0 (underflow shows here).</param>
/// <param name="Finite">Whether every gradient element is finite (a scaled step with inf/NaN would be skipped).</param>
internal sealed record GradientHealthRow(string Variant, double GradNorm, double RelativeError, double ZeroFraction, bool Finite);

/// <summary>
/// fp16 training health: the LoRA gradients of one realistic DDPO-IS micro-step (guided prediction, DDIM
/// log-probability, clipped ratio loss divided as ddpo-pytorch's compressibility run divides it: 2 accumulation
/// steps x 50 timesteps) in fp32, fp16 without scaling, fp16 with <see cref="LossScaler"/> and bf16, from the same
/// weights and batch. Unscaled fp16 gradients underflow (see <c>HalfPrecisionGradientTests</c>); scaled ones match fp32.
/// </summary>
internal static class HalfPrecisionHealth
{
    private const double SdLatentElements = 4 * 64 * 64;
    private const double MicroStepsPerOptimizerStep = 2 * 50;

    /// <summary>Runs the four variants on <paramref name="device"/> with the check's UNet.</summary>
    public static List<GradientHealthRow> Run(GpuCheckSizes sizes, Device device)
    {
        using var scope = NewDisposeScope();
        // One set of weights (fp32, PyTorch default initialisation) with non-zero LoRA up weights, copied into each precision.
        Dictionary<string, Tensor> weights;
        Dictionary<string, Tensor> loraWeights;
        using (var reference = new UNet2DConditionModel(sizes.Unet, ScalarType.Float32, device))
        using (var lora = LoraAdapters.Attach(reference, sizes.LoraRank, sizes.LoraRank, gen: new Generator(5)))
        {
            using (no_grad())
            {
                var gen = new Generator(6);
                foreach (var p in lora.Parameters.Where((_, i) => i % 2 == 1)) p.copy_(randn(p.shape, generator: gen).mul_(0.05));
            }
            weights = reference.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
            loraWeights = lora.Parameters.Select((p, i) => (p, i)).ToDictionary(x => x.i.ToString(), x => x.p.detach().clone());
        }
        var g = new Generator(7);
        var c = sizes.Unet;
        long batch = sizes.HealthBatch, size = c.SampleSize ?? 64, channels = c.InChannels, textDim = c.CrossAttentionDim[0];
        var latents = randn([batch, channels, size, size], generator: g);
        var inputs = new Dictionary<string, Tensor>
        {
            ["latents"] = latents.to(device),
            ["next"] = (latents * 0.95 + randn([batch, channels, size, size], generator: g) * 0.1).to(device),
            ["embeds"] = randn([batch, 77, textDim], generator: g).to(device),
            ["negative"] = randn([batch, 77, textDim], generator: g).to(device),
            ["advantages"] = randn([batch], generator: g).clamp(-5, 5).to(device),
        };
        var variants = new (string Name, ScalarType DType, bool Scaled)[]
        {
            ("fp32", ScalarType.Float32, false), ("fp16", ScalarType.Float16, false),
            ("fp16 + loss scaling", ScalarType.Float16, true), ("bf16", ScalarType.BFloat16, false),
        };
        Tensor? fp32 = null;
        var rows = new List<GradientHealthRow>();
        foreach (var (name, dtype, scaled) in variants)
        {
            var flat = Gradients(sizes, device, dtype, scaled, weights, loraWeights, inputs, out bool finite);
            fp32 ??= flat;
            double norm = flat.norm().item<float>();
            double rel = ReferenceEquals(flat, fp32) ? 0 : (flat - fp32).norm().item<float>() / fp32.norm().item<float>();
            double zeros = flat.eq(0).to(ScalarType.Float32).mean().item<float>();
            rows.Add(new GradientHealthRow(name, norm, rel, zeros, finite));
        }
        return rows;
    }

    private static Tensor Gradients(GpuCheckSizes sizes, Device device, ScalarType dtype, bool scaled,
        Dictionary<string, Tensor> weights, Dictionary<string, Tensor> loraWeights, Dictionary<string, Tensor> x, out bool finite)
    {
        using var unet = new UNet2DConditionModel(sizes.Unet, dtype, device);
        using (no_grad())
        {
            foreach (var (key, p) in unet.state_dict()) p.copy_(weights[key]);
        }
        foreach (var p in unet.parameters()) p.requires_grad = false;
        using var lora = LoraAdapters.Attach(unet, sizes.LoraRank, sizes.LoraRank, gen: new Generator(5));
        using (no_grad())
        {
            for (int i = 0; i < lora.Parameters.Count; i++) lora.Parameters[i].copy_(loraWeights[i.ToString()]);
        }
        using var scheduler = new DdimScheduler(DdimSchedulerConfig.StableDiffusion());
        scheduler.SetTimesteps(sizes.Steps);
        var scaler = new LossScaler(enabled: scaled);
        long batch = x["latents"].shape[0];
        var t = full([batch], 501L, dtype: ScalarType.Int64, device: device);
        var eps = GuidedNoisePredictor.Predict(unet, x["latents"], t, x["embeds"], x["negative"], sizes.Guidance, dtype);
        var step = scheduler.Step(eps, t, x["latents"], 1.0, prevSample: x["next"], finalStep: DdimFinalStep.Ddpo);
        var (loss, _, _) = PolicyLoss.DdpoIs(step.LogProb, step.LogProb.detach(), x["advantages"], clipRange: 1e-4, advClipMax: 5);
        // The per-element gradient of Stable Diffusion's 4x64x64 latents, whatever the model's size.
        double elements = x["latents"][0].numel();
        scaler.Scaled(loss * (elements / SdLatentElements) / MicroStepsPerOptimizerStep).backward();
        bool unscaledFinite = scaler.Unscale(lora.Parameters);
        var flat = cat(lora.Parameters.Select(p => p.grad!.flatten().to(ScalarType.Float32)).ToList()).detach().clone();
        finite = unscaledFinite && flat.isfinite().all().item<bool>();
        return flat;
    }
}
