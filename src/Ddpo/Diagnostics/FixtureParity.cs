using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Models.Lora;
using Ddpo.Models.Unet;
using Ddpo.Models.Vae;
using Ddpo.Pipelines;
using Ddpo.Runtime;
using Ddpo.Schedulers;
using static TorchSharp.torch;

namespace Ddpo.Diagnostics;

/// <summary>One compared output of one reference fixture in one dtype.</summary>
/// <param name="Fixture">Fixture name (folder or file stem under the fixtures folder).</param>
/// <param name="Output">Output name in the fixture's io file (e.g. <c>out</c>, <c>grad_sample</c>).</param>
/// <param name="DType">Precision of the model weights and activations (fp32, fp16, bf16).</param>
/// <param name="Reference">What it was compared with: <c>fixture</c> (PyTorch's numbers) or <c>fp32 on DEVICE</c>.</param>
/// <param name="MaxAbsError">Largest absolute difference.</param>
/// <param name="RelativeError">Largest absolute difference over the reference's largest |value|.</param>
/// <param name="Tolerance">Absolute tolerance of the pass/fail decision (null where only reported).</param>
/// <param name="Passed">Whether every element is within tolerance (null: reported only, as for half precision).</param>
internal sealed record FixtureRow(string Fixture, string Output, string DType, string Reference, double MaxAbsError,
    double RelativeError, double? Tolerance, bool? Passed);

/// <summary>
/// Runs the reference fixtures (see the fixtures README: tiny SD 1.x UNet with its input gradient, LoRA, VAE,
/// CLIP text and vision towers, DDIM log-probabilities, a guided trajectory) on a device. In fp32 each output is
/// compared with the fixture (max abs error &lt;= 1e-4 + 1e-4 |expected|, the tests' tolerance; the input gradient
/// relative to its scale); in fp16/bf16 it is compared with the fp32 result on the same device and only reported.
/// </summary>
internal static class FixtureParity
{
    /// <summary>Fixture entries this check needs, relative to the fixtures folder.</summary>
    public static readonly IReadOnlyList<string> RequiredEntries =
    [
        "unet_sd1_tiny/io.safetensors", "lora_sd1_tiny/pytorch_lora_weights.safetensors", "lora_sd1_tiny/io.safetensors",
        "vae_tiny/io.safetensors", "clip_text_tiny/io.safetensors", "clip_vision_tiny/io.safetensors",
        "ddim_logprob.safetensors", "trajectory_cfg.safetensors",
    ];

    private delegate Dictionary<string, Tensor> Case(string fixtures, Device device, ScalarType dtype);

    // Each case returns float32 CPU tensors named as the outputs in the fixture's io file.
    private static readonly (string Name, Case Run)[] Cases =
    [
        ("unet_sd1_tiny", Unet),
        ("lora_sd1_tiny", Lora),
        ("vae_tiny", Vae),
        ("clip_text_tiny", ClipText),
        ("clip_vision_tiny", ClipVision),
        ("ddim_logprob", Ddim),
        ("trajectory_cfg", Trajectory),
    ];

    /// <summary>Throws <see cref="FileNotFoundException"/> naming the first missing fixture file.</summary>
    public static void CheckFolder(string fixtures)
    {
        if (!Directory.Exists(fixtures))
        {
            throw new DirectoryNotFoundException($"--fixtures: folder '{fixtures}' does not exist (expected a copy of ../shared/fixtures)");
        }
        foreach (var entry in RequiredEntries)
        {
            var path = Path.Combine(fixtures, entry);
            if (!File.Exists(path)) throw new FileNotFoundException($"--fixtures: {path} is missing (expected a copy of ../shared/fixtures)", path);
        }
    }

    /// <summary>The fixtures <see cref="Run"/> compares, in order.</summary>
    public static IReadOnlyList<string> FixtureNames => Cases.Select(c => c.Name).ToList();

    /// <summary>
    /// Runs every fixture (or those named in <paramref name="only"/>) in fp32 and in each of <paramref name="halfTypes"/>
    /// on <paramref name="device"/>; <paramref name="onRow"/> sees each row as it is made (to write partial results).
    /// </summary>
    public static List<FixtureRow> Run(string fixtures, Device device, IReadOnlyList<ScalarType> halfTypes, Action<FixtureRow>? onRow = null,
        Action<string>? log = null, IReadOnlyCollection<string>? only = null)
    {
        CheckFolder(fixtures);
        var rows = new List<FixtureRow>();
        void Add(FixtureRow row)
        {
            rows.Add(row);
            onRow?.Invoke(row);
        }
        foreach (var (name, run) in Cases.Where(c => only is null || only.Contains(c.Name)))
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var expected = LoadExpected(fixtures, name);
            var fp32 = run(fixtures, device, ScalarType.Float32);
            try
            {
                foreach (var (output, actual) in fp32)
                {
                    var reference = expected[output];
                    double atol = 1e-4;
                    if (output == "grad_sample")
                    {
                        // The input gradient is small (max ~7e-4): its tolerance is relative to its scale, as in the tests.
                        using var max = reference.abs().max();
                        atol = 1e-3 * max.item<float>();
                    }
                    var c = TensorComparison.Of(reference, actual, atol, 1e-4, $"{name}/{output}");
                    Add(new FixtureRow(name, output, "fp32", "fixture", c.MaxAbsError, c.RelativeToScale, atol, c.Within));
                }
                foreach (var half in halfTypes)
                {
                    var outputs = run(fixtures, device, half);
                    try
                    {
                        foreach (var (output, actual) in outputs)
                        {
                            var c = TensorComparison.Of(fp32[output], actual, 0, 0, $"{name}/{output}");
                            Add(new FixtureRow(name, output, TorchRuntime.DTypeName(half), $"fp32 on {device}", c.MaxAbsError, c.RelativeToScale, null, null));
                        }
                    }
                    finally
                    {
                        StateDictLoader.DisposeAll(outputs);
                    }
                }
            }
            finally
            {
                StateDictLoader.DisposeAll(fp32);
                StateDictLoader.DisposeAll(expected);
            }
            log?.Invoke($"  {name}: {clock.Elapsed.TotalSeconds:F1} s");
        }
        return rows;
    }

    /// <summary>The fixture's io file: inputs and PyTorch's outputs, compared by output name.</summary>
    private static Dictionary<string, Tensor> LoadExpected(string fixtures, string name) => SafetensorsFile.Load(IoPath(fixtures, name));

    private static string IoPath(string fixtures, string name) =>
        name.EndsWith("_tiny", StringComparison.Ordinal) ? Path.Combine(fixtures, name, "io.safetensors") : Path.Combine(fixtures, name + ".safetensors");

    private static Dictionary<string, Tensor> Inputs(string fixtures, string name, Device device) =>
        SafetensorsFile.Load(IoPath(fixtures, name)).ToDictionary(kv => kv.Key, kv =>
        {
            var moved = kv.Value.to(device);
            if (!ReferenceEquals(moved, kv.Value)) kv.Value.Dispose();
            return moved;
        });

    // Every case returns float32 CPU tensors outside any dispose scope.
    private static Tensor Out(Tensor t) => t.detach().to(ScalarType.Float32).cpu().clone().DetachFromDisposeScope();

    private static Dictionary<string, Tensor> Unet(string fixtures, Device device, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var unet = UNet2DConditionModel.FromPretrained(Path.Combine(fixtures, "unet_sd1_tiny"), dtype, device);
        foreach (var p in unet.parameters()) p.requires_grad = false;
        var io = Inputs(fixtures, "unet_sd1_tiny", device);
        var sample = io["sample"].to(dtype).detach().requires_grad_(true);
        var output = unet.forward(sample, io["timestep"], io["encoder_hidden_states"].to(dtype));
        output.to(ScalarType.Float32).pow(2).mean().backward();
        return new() { ["out"] = Out(output), ["grad_sample"] = Out(sample.grad!) };
    }

    private static Dictionary<string, Tensor> Lora(string fixtures, Device device, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var unet = UNet2DConditionModel.FromPretrained(Path.Combine(fixtures, "unet_sd1_tiny"), dtype, device);
        using var lora = LoraAdapters.Load(unet, Path.Combine(fixtures, "lora_sd1_tiny", "pytorch_lora_weights.safetensors"));
        var io = Inputs(fixtures, "lora_sd1_tiny", device);
        using var _ = no_grad();
        return new() { ["out"] = Out(unet.forward(io["sample"].to(dtype), io["timestep"], io["encoder_hidden_states"].to(dtype))) };
    }

    private static Dictionary<string, Tensor> Vae(string fixtures, Device device, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var vae = AutoencoderKL.FromPretrained(Path.Combine(fixtures, "vae_tiny"), dtype, device);
        var io = Inputs(fixtures, "vae_tiny", device);
        using var _ = no_grad();
        var decoded = vae.Decode(io["latents"].to(dtype));
        var (mean, std) = vae.Encode(io["image"].to(dtype));
        return new() { ["decoded"] = Out(decoded), ["latent_mean"] = Out(mean), ["latent_std"] = Out(std) };
    }

    private static Dictionary<string, Tensor> ClipText(string fixtures, Device device, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var model = ClipTextModel.FromPretrained(Path.Combine(fixtures, "clip_text_tiny"), dtype, device);
        var io = Inputs(fixtures, "clip_text_tiny", device);
        using var _ = no_grad();
        var (last, pooled) = model.Encode(io["input_ids"]);
        return new() { ["last_hidden_state"] = Out(last), ["pooler_output"] = Out(pooled) };
    }

    private static Dictionary<string, Tensor> ClipVision(string fixtures, Device device, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var model = ClipVisionModelWithProjection.FromPretrained(Path.Combine(fixtures, "clip_vision_tiny"), dtype, device);
        var io = Inputs(fixtures, "clip_vision_tiny", device);
        using var _ = no_grad();
        return new() { ["image_embeds"] = Out(model.GetImageEmbeds(io["pixel_values"].to(dtype))) };
    }

    /// <summary>The DDIM step math runs in float32 by design; in half precision the model output (eps) is rounded first.</summary>
    private static Dictionary<string, Tensor> Ddim(string fixtures, Device device, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var f = Inputs(fixtures, "ddim_logprob", device);
        using var scheduler = new DdimScheduler(DdimSchedulerConfig.StableDiffusion());
        scheduler.SetTimesteps(50);
        var result = new Dictionary<string, Tensor>();
        for (int c = 0; c < 3; c++)
        {
            double eta = f[$"c{c}_eta"].cpu().item<float>();
            var eps = f[$"c{c}_eps"].to(dtype);
            var t = f[$"c{c}_t"];
            var sample = f[$"c{c}_sample"];
            result[$"c{c}_logp"] = Out(scheduler.Step(eps, t, sample, eta, prevSample: f[$"c{c}_prev"], finalStep: DdimFinalStep.Ddpo).LogProb);
            result[$"c{c}_logp_other"] = Out(scheduler.Step(eps, t, sample, eta, prevSample: f[$"c{c}_other"], finalStep: DdimFinalStep.Ddpo).LogProb);
        }
        return result;
    }

    /// <summary>Re-scores the recorded guided trajectory, as DDPO training does.</summary>
    private static Dictionary<string, Tensor> Trajectory(string fixtures, Device device, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var f = Inputs(fixtures, "trajectory_cfg", device);
        using var unet = UNet2DConditionModel.FromPretrained(Path.Combine(fixtures, "unet_sd1_tiny"), dtype, device);
        using var scheduler = new DdimScheduler(DdimSchedulerConfig.StableDiffusion());
        var timesteps = f["timesteps"].cpu().data<long>().ToArray();
        scheduler.SetTimesteps(timesteps.Length);
        double guidance = f["guidance_scale"].cpu().item<float>(), eta = f["eta"].cpu().item<float>();
        var latents = f["latents"];
        using var _ = no_grad();
        var logProbs = new List<Tensor>();
        for (int i = 0; i < timesteps.Length; i++)
        {
            var x = latents[.., i];
            var t = full(new long[] { x.shape[0] }, timesteps[i], dtype: ScalarType.Int64, device: device);
            var eps = GuidedNoisePredictor.Predict(unet, x, t, f["prompt_embeds"], f["negative_embeds"], guidance, dtype);
            logProbs.Add(scheduler.Step(eps, t, x, eta, prevSample: latents[.., i + 1], finalStep: DdimFinalStep.Ddpo).LogProb);
        }
        return new() { ["log_probs"] = Out(stack(logProbs, 1)) };
    }
}
