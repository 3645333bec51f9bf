using Ddpo.Models.Loading;
using Ddpo.Models.Lora;
using Ddpo.Models.Transformers;
using Ddpo.Models.Unet;
using Ddpo.Models.Vae;
using Ddpo.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Benchmarks;

/// <summary>
/// The rows of the side-by-side speed table (issue 25): each builds its model and seeded inputs, and the call that
/// <c>tools/cpu/torch_rows.py</c> repeats with diffusers on the same folder and the same input tensors (written by
/// <see cref="WriteInputs"/>). The default run's shapes come from the built-in CPU preset (ConfigPresets.BuiltinCpu):
/// sampling batch 16, 10 DDIM steps, eta 1, guidance 1 (no CFG), training batch 4, LoRA rank 8 / alpha 8 on
/// to_q, to_k, to_v, to_out.0.
/// </summary>
internal static class SideBySideRows
{
    /// <summary>Every row, in table order.</summary>
    public static readonly IReadOnlyList<string> Names =
        ["unet_fwd_b32", "unet_fwdbwd_b32", "sd14_fwd_b1", "sample_step_b16", "train_step_b4", "vae_decode_b16", "sd3_fwd", "flux_fwd"];

    /// <summary>Text tokens of the UNet rows (CLIP's 77).</summary>
    public const int Tokens = 77;

    /// <summary>
    /// Builds row <paramref name="name"/>: the built-in model from <paramref name="builtinDir"/>, the tiny VAE / SD3 /
    /// FLUX folders and inputs from <paramref name="fixturesDir"/> (<c>tests/Ddpo.Tests/Fixtures/refenv</c>).
    /// </summary>
    public static SideBySideRow Create(string name, string builtinDir, string fixturesDir) => name switch
    {
        "unet_fwd_b32" => UnetForward(name, LoadBuiltinUnet(builtinDir), 32, "built-in UNet forward, batch 32", seed: 0),
        "unet_fwdbwd_b32" => UnetForwardBackward(name, LoadBuiltinUnet(builtinDir), 32),
        "sd14_fwd_b1" => UnetForward(name, new UNet2DConditionModel(UNet2DConditionConfig.Sd14()), 1,
            "SD1.4-size UNet forward, batch 1, 64x64 latents (random weights)", seed: 2),
        "sample_step_b16" => SampleStep(name, LoadBuiltinUnet(builtinDir), builtinDir, 16),
        "train_step_b4" => TrainStep(name, LoadBuiltinUnet(builtinDir), builtinDir, 4),
        "vae_decode_b16" => VaeDecode(name, Path.Combine(fixturesDir, "vae", "model"), 16),
        "sd3_fwd" => Sd3Forward(name, Path.Combine(fixturesDir, "sd3_transformer")),
        "flux_fwd" => FluxForward(name, Path.Combine(fixturesDir, "flux_transformer")),
        _ => throw new ArgumentException($"unknown row '{name}' (rows: {string.Join(", ", Names)})"),
    };

    /// <summary>Writes the row's inputs to a safetensors file for the PyTorch side.</summary>
    public static void WriteInputs(SideBySideRow row, string path) =>
        SafetensorsFile.SaveAtomic(path, row.Inputs.ToDictionary(kv => kv.Key, kv => kv.Value.contiguous()));

    private static UNet2DConditionModel LoadBuiltinUnet(string builtinDir)
    {
        var unet = UNet2DConditionModel.FromPretrained(Path.Combine(builtinDir, "unet"));
        unet.eval();
        return unet;
    }

    private static Dictionary<string, Tensor> UnetInputs(UNet2DConditionConfig c, int batch, long timestep, long seed)
    {
        var g = new Generator((ulong)seed);
        long size = c.SampleSize ?? 64;
        return new Dictionary<string, Tensor>
        {
            ["sample"] = randn(new long[] { batch, c.InChannels, size, size }, generator: g),
            ["timestep"] = full(new long[] { batch }, timestep, dtype: ScalarType.Int64),
            ["encoder_hidden_states"] = randn(new long[] { batch, Tokens, c.CrossAttentionDim[0] }, generator: g),
        };
    }

    private static double CountForward(nn.Module model, Action forward) => FlopCounter.Count(model, forward);

    private const string ForwardFormula = "forward: 2 x MACs of every conv and linear (hooked on the real call: output elements x fan-in) + 4 x B x Lq x Lk x inner per attention (QK^T and PV)";

    private static SideBySideRow UnetForward(string name, UNet2DConditionModel unet, int batch, string description, long seed)
    {
        var inputs = UnetInputs(unet.Config, batch, 500, seed);
        void Call()
        {
            using var scope = NewDisposeScope();
            using var _ = inference_mode();
            unet.forward(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"]);
        }
        return new SideBySideRow(name, description, CountForward(unet, Call), ForwardFormula, Call, inputs, [unet]);
    }

    private static SideBySideRow UnetForwardBackward(string name, UNet2DConditionModel unet, int batch)
    {
        var inputs = UnetInputs(unet.Config, batch, 500, seed: 1);
        foreach (var p in unet.parameters()) p.requires_grad = true;
        double forward = CountForward(unet, () =>
        {
            using var scope = NewDisposeScope();
            unet.forward(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"]);
        });
        void Call()
        {
            using var scope = NewDisposeScope();
            // Gradients accumulate into .grad on both sides (neither clears them), so both pay the same add.
            unet.forward(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"]).mean().backward();
        }
        return new SideBySideRow(name, "built-in UNet forward + backward (all weights), batch 32", 3 * forward,
            "3 x forward (backward = input gradients + weight gradients, one forward each); " + ForwardFormula, Call, inputs, [unet]);
    }

    private static DdimScheduler LoadScheduler(string builtinDir, int steps)
    {
        var scheduler = new DdimScheduler(DdimSchedulerConfig.Load(Path.Combine(builtinDir, "scheduler", "scheduler_config.json")));
        scheduler.SetTimesteps(steps);
        return scheduler;
    }

    private static SideBySideRow SampleStep(string name, UNet2DConditionModel unet, string builtinDir, int batch)
    {
        var scheduler = LoadScheduler(builtinDir, 10);
        var inputs = UnetInputs(unet.Config, batch, scheduler.Timesteps[0], seed: 3);
        inputs["noise"] = randn(inputs["sample"].shape, generator: new Generator(4));
        void Call()
        {
            using var scope = NewDisposeScope();
            using var _ = inference_mode();
            var x = inputs["sample"];
            var eps = unet.forward(x, inputs["timestep"], inputs["encoder_hidden_states"]);
            scheduler.Step(eps, inputs["timestep"], x, 1.0, noise: inputs["noise"], finalStep: DdimFinalStep.Ddpo);
        }
        return new SideBySideRow(name, "one sampling step of the default run: UNet (no CFG) + DDIM eta 1, batch 16",
            CountForward(unet, Call), "UNet forward (the DDIM update is element-wise, not counted); " + ForwardFormula, Call, inputs, [unet]);
    }

    private static SideBySideRow TrainStep(string name, UNet2DConditionModel unet, string builtinDir, int batch)
    {
        var scheduler = LoadScheduler(builtinDir, 10);
        foreach (var p in unet.parameters()) p.requires_grad = false;
        var lora = LoraAdapters.Attach(unet, 8, 8, gen: new Generator(5));
        var inputs = UnetInputs(unet.Config, batch, scheduler.Timesteps[0], seed: 6);
        inputs["prev_sample"] = randn(inputs["sample"].shape, generator: new Generator(7));
        double forward = CountForward(unet, () =>
        {
            using var scope = NewDisposeScope();
            unet.forward(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"]);
        });
        void Call()
        {
            using var scope = NewDisposeScope();
            var x = inputs["sample"];
            var eps = unet.forward(x, inputs["timestep"], inputs["encoder_hidden_states"]);
            var step = scheduler.Step(eps, inputs["timestep"], x, 1.0, prevSample: inputs["prev_sample"], finalStep: DdimFinalStep.Ddpo);
            step.LogProb.mean().neg().backward();
        }
        return new SideBySideRow(name, "one training micro-step of the default run: UNet + LoRA r8 forward, DDIM log-prob, backward, batch 4",
            2 * forward, "2 x forward (frozen weights: the backward computes input gradients only; LoRA's rank-8 weight gradients are in the forward's count once); "
            + ForwardFormula, Call, inputs, [new LoraOwner(lora), unet]);
    }

    private static SideBySideRow VaeDecode(string name, string folder, int batch)
    {
        var vae = AutoencoderKL.FromPretrained(folder);
        vae.eval();
        var inputs = new Dictionary<string, Tensor>
        {
            ["z"] = randn(new long[] { batch, vae.Config.LatentChannels, 8, 8 }, generator: new Generator(8)),
        };
        void Call()
        {
            using var scope = NewDisposeScope();
            using var _ = inference_mode();
            vae.Decode(inputs["z"]);
        }
        return new SideBySideRow(name, $"tiny VAE decode, batch {batch}, 8x8 latents (fixture refenv/vae)", CountForward(vae, Call),
            ForwardFormula, Call, inputs, [vae]);
    }

    private static Dictionary<string, Tensor> FixtureInputs(string dir, params string[] keys)
    {
        var all = SafetensorsFile.Load(Path.Combine(dir, "io.safetensors"));
        var inputs = keys.ToDictionary(k => k, k => all.TryGetValue(k, out var t)
            ? t.clone() : throw new InvalidDataException($"{dir}/io.safetensors: no tensor '{k}'"));
        foreach (var t in all.Values) t.Dispose();
        return inputs;
    }

    private static SideBySideRow Sd3Forward(string name, string dir)
    {
        var model = SD3Transformer2DModel.FromPretrained(Path.Combine(dir, "model"));
        model.eval();
        var inputs = FixtureInputs(dir, "hidden_states", "encoder_hidden_states", "pooled_projections", "timestep");
        void Call()
        {
            using var scope = NewDisposeScope();
            using var _ = inference_mode();
            model.forward(inputs["hidden_states"], inputs["encoder_hidden_states"], inputs["pooled_projections"], inputs["timestep"]);
        }
        return new SideBySideRow(name, "tiny SD3 transformer forward (fixture refenv/sd3_transformer and its inputs)", CountForward(model, Call),
            "attention products from the to_q/to_k pairs only (the text tokens' add_q/k_proj are not paired); " + ForwardFormula, Call, inputs, [model]);
    }

    private static SideBySideRow FluxForward(string name, string dir)
    {
        var model = FluxTransformer2DModel.FromPretrained(Path.Combine(dir, "model"));
        model.eval();
        var inputs = FixtureInputs(dir, "hidden_states", "encoder_hidden_states", "pooled_projections", "timestep", "img_ids", "txt_ids", "guidance");
        void Call()
        {
            using var scope = NewDisposeScope();
            using var _ = inference_mode();
            model.forward(inputs["hidden_states"], inputs["encoder_hidden_states"], inputs["pooled_projections"], inputs["timestep"],
                inputs["img_ids"], inputs["txt_ids"], inputs["guidance"]);
        }
        return new SideBySideRow(name, "tiny FLUX transformer forward (fixture refenv/flux_transformer and its inputs)", CountForward(model, Call),
            "attention products from the to_q/to_k pairs only (the text tokens' add_q/k_proj are not paired); " + ForwardFormula, Call, inputs, [model]);
    }

    /// <summary>Detaches the LoRA adapters when the row is disposed.</summary>
    private sealed class LoraOwner(LoraAdapters lora) : IDisposable
    {
        public void Dispose() => lora.Detach();
    }
}
