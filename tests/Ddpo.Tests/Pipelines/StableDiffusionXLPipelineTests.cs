using System.Text.Json.Nodes;
using Ddpo.Models.Loading;
using Ddpo.Pipelines;
using Ddpo.Schedulers;
using Ddpo.Policies;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpo.Tests.Pipelines;

/// <summary>
/// <see cref="StableDiffusionXLPipeline"/> assembled from the refenv fixtures: text_encoder = CLIPTextModel with
/// clip_l's weights (clip_l_text_model), text_encoder_2 = clip_g (with projection), their tokenizers, the sdxl_unet
/// (cross_attention_dim 16 + 24, add_embedding 24 + 6 x 8) and the tiny SD VAE. encode_prompt is checked against
/// transformers' hidden_states[-2] and text_embeds; sampling, rescoring and the loader's checks on the tiny pipeline.
/// </summary>
public sealed class StableDiffusionXLPipelineTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string Encoders = TestPaths.Fixture("refenv", "text_encoders");
    private static readonly string[] Prompts = ["a photo of a cat riding a horse", "An oil painting of a lighthouse at sunset, studio lighting!"];

    private readonly string _dir = Assemble();

    /// <summary>Writes the SDXL folder of the fixtures' parts.</summary>
    private static string Assemble(bool forceZeros = true)
    {
        var dir = TestPaths.NewTempDir("sdxl");
        CopyTree(Path.Combine(Encoders, "clip_l_text_model"), Path.Combine(dir, "text_encoder"));
        CopyTree(Path.Combine(Encoders, "clip_g"), Path.Combine(dir, "text_encoder_2"));
        CopyTree(Path.Combine(Encoders, "tokenizer"), Path.Combine(dir, "tokenizer"));
        CopyTree(Path.Combine(Encoders, "tokenizer_2"), Path.Combine(dir, "tokenizer_2"));
        CopyTree(TestPaths.Fixture("refenv", "sdxl_unet", "model"), Path.Combine(dir, "unet"));
        CopyTree(TestPaths.Fixture("vae_tiny"), Path.Combine(dir, "vae"));
        File.Delete(Path.Combine(dir, "vae", "io.safetensors"));
        StableDiffusionXLLayout.WriteIndex(dir, forceZeros);
        return dir;
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void EncodePromptIsBothPenultimateStatesAndBigGsProjection()
    {
        using var scope = NewDisposeScope();
        var io = SafetensorsFile.Load(Path.Combine(Encoders, "io.safetensors"));
        using var pipeline = Assert.IsType<StableDiffusionXLPipeline>(PipelineLoader.FromPretrained(_dir));
        Assert.Equal("Stable Diffusion XL (DDIM)", pipeline.Family);
        Assert.True(pipeline.ForceZerosForEmptyPrompt);
        var (embeds, pooled) = pipeline.EncodePrompt(Prompts);
        var expected = cat([io["clip_l.hidden_states_m2"], io["clip_g.hidden_states_m2"]], -1);
        Assert.Equal(new long[] { 2, 77, 40 }, embeds.shape);
        double e1 = (embeds - expected).abs().max().item<float>(), e2 = (pooled - io["clip_g.text_embeds"]).abs().max().item<float>();
        output.WriteLine($"prompt_embeds max abs error {e1:g4} (max |ref| {expected.abs().max().item<float>():g4}); pooled {e2:g4}");
        // Two float32 CLIP layers on O(1-4) states: the encoders' own tests measure ~1e-6.
        TensorAssert.Close(expected, embeds, atol: 1e-5, rtol: 1e-5, what: "cat(CLIP-L hidden[-2], bigG hidden[-2])");
        TensorAssert.Close(io["clip_g.text_embeds"], pooled, atol: 1e-5, rtol: 1e-5, what: "bigG text_embeds");

        // force_zeros_for_empty_prompt: the empty prompt is zeros; another prompt in the same batch is unchanged.
        var (negEmbeds, negPooled) = pipeline.EncodePrompt(["", Prompts[1]]);
        Assert.Equal(0f, negEmbeds[0].abs().max().item<float>());
        Assert.Equal(0f, negPooled[0].abs().max().item<float>());
        TensorAssert.Close(expected[1], negEmbeds[1], atol: 1e-5, rtol: 1e-5, what: "second row");
    }

    [Fact]
    public void WithoutForceZerosTheEmptyPromptIsEncoded()
    {
        var dir = Assemble(forceZeros: false);
        try
        {
            using var scope = NewDisposeScope();
            using var pipeline = StableDiffusionXLPipeline.FromPretrained(dir);
            Assert.False(pipeline.ForceZerosForEmptyPrompt);
            var (embeds, pooled) = pipeline.EncodePrompt([""]);
            Assert.True(embeds.abs().max().item<float>() > 0.1);
            Assert.True(pooled.abs().max().item<float>() > 0.01);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void TimeIdsAreDiffusersDefaults()
    {
        using var ids = StableDiffusionXLPipeline.TimeIds(2, 768, 1024, CPU);
        Assert.Equal(new long[] { 2, 6 }, ids.shape);
        Assert.Equal([768f, 1024f, 0f, 0f, 768f, 1024f], ids[1].data<float>().ToArray());
    }

    [Fact]
    public void GuidedSamplingRecordsLogProbsThatRescoringReproduces()
    {
        using var scope = NewDisposeScope();
        using var pipeline = StableDiffusionXLPipeline.FromPretrained(_dir);
        var policy = ((ITextToImagePipeline)pipeline).Policy;
        Assert.Equal(PredictionType.Epsilon, policy.Prediction);
        // 64 x 32 px (not the default 128): the time ids follow the size sampled.
        var options = new SamplingOptions { NumSteps = 3, GuidanceScale = 5.0, Eta = 1.0, Height = 64, Width = 32, RecordTrajectory = true };
        var (condition, negative) = PolicySampling.Conditions(policy, Prompts, options);
        using (condition)
        using (negative)
        {
            using var rollout = policy.Sample(condition, negative, options, new Generator(3), null);
            Assert.Equal(new long[] { 2, 4, 4, 8, 4 }, rollout.Latents!.shape);
            for (int i = 0; i < 3; i++)
            {
                var batch = new TransitionBatch(rollout.Latents[.., i], rollout.Latents[.., i + 1], rollout.Times[i].expand(2).contiguous(), condition, negative);
                var r = policy.Evaluate(batch, options);
                TensorAssert.Close(rollout.LogProbs![.., i], r.LogProb, atol: 1e-4, rtol: 1e-5, what: $"log-prob of step {i}");
            }
            using var images = policy.Decode(rollout.Final);
            Assert.Equal(new long[] { 2, 3, 64, 32 }, images.shape);
            // Predict is the guided noise the sampler used: eps at the first step equals the UNet's, guided by hand.
            using var eps = policy.Predict(rollout.Latents[.., 0], rollout.Times[0], condition, negative, 5.0);
            using var cond = policy.Predict(rollout.Latents[.., 0], rollout.Times[0], condition, null, 1.0);
            using var uncond = policy.Predict(rollout.Latents[.., 0], rollout.Times[0], negative!, null, 1.0);
            TensorAssert.Close(uncond + 5.0 * (cond - uncond), eps, atol: 1e-5, rtol: 1e-5, what: "guided = uncond + g (cond - uncond)");
        }
    }

    [Fact]
    public void DenoisingLossAndFrozenCopyUseTheTimeIdsOfTheLatentsSize()
    {
        using var scope = NewDisposeScope();
        using var pipeline = StableDiffusionXLPipeline.FromPretrained(_dir);
        var policy = ((ITextToImagePipeline)pipeline).Policy;
        using var condition = policy.Encode(Prompts);
        var x0 = randn([2, 4, 4, 8], generator: new Generator(1));
        var loss = policy.DenoisingLoss(x0, condition, null, 1.0, new Generator(2));
        Assert.Equal(new long[] { 2 }, loss.shape);
        Assert.True(loss.isfinite().all().item<bool>() && loss.min().item<float>() > 0);
        // SkipDenoisingDraws draws what the loss drew: the generators continue alike.
        var a = new Generator(2);
        var b = new Generator(2);
        policy.DenoisingLoss(x0, condition, null, 1.0, a);
        policy.SkipDenoisingDraws(x0.shape, b);
        Assert.Equal(randn([3], generator: a).data<float>().ToArray(), randn([3], generator: b).data<float>().ToArray());
        // The same weights in another model: equal up to float32 summation order (7e-7 measured on outputs of ~1.2).
        using var frozen = policy.FrozenCopy();
        var t = tensor(new long[] { 500, 20 });
        TensorAssert.Close(policy.Predict(x0, t, condition, null, 1.0), frozen.Predict(x0, t, condition, null, 1.0), atol: 1e-5, rtol: 0, what: "frozen copy");
        Assert.NotSame(policy.Denoiser, frozen.Denoiser);
    }

    [Fact]
    public void SamplingGivesImagesOfTheDefaultSizeAndSeedsAreReproducible()
    {
        using var pipeline = StableDiffusionXLPipeline.FromPretrained(_dir);
        Assert.Equal(128, pipeline.DefaultImageSize);
        var options = new SamplingOptions { NumSteps = 2, GuidanceScale = 5.0, Height = 32, Width = 32 };
        using var a = pipeline.Sample(["a cat"], options, new Generator(5));
        using var b = pipeline.Sample(["a cat"], options, new Generator(5));
        Assert.Equal(new long[] { 1, 3, 32, 32 }, a.Images.shape);
        TensorAssert.Close(a.Images, b.Images, atol: 0, rtol: 0, what: "same seed");
    }

    [Fact]
    public void Float16KeepsTheVaeInFloat32WhenItsConfigSaysForceUpcast()
    {
        using var pipeline = StableDiffusionXLPipeline.FromPretrained(_dir, CPU, ScalarType.Float16);
        Assert.Equal(ScalarType.Float16, pipeline.Unet.DType);
        Assert.Equal(ScalarType.Float32, pipeline.Vae.DType);
        Assert.Equal(ScalarType.Float16, pipeline.TextEncoder2.parameters().First().dtype);
    }

    [Fact]
    public void SdxlBasesEulerSchedulerConfigIsReadAsDdim()
    {
        // stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json: read as DDIM, as SD 1/2's PNDM config is.
        var schedulerDir = Path.Combine(_dir, "scheduler");
        Directory.CreateDirectory(schedulerDir);
        File.WriteAllText(Path.Combine(schedulerDir, "scheduler_config.json"), """
            {"_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.19.0.dev0", "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": false, "interpolation_type": "linear",
             "num_train_timesteps": 1000, "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": false,
             "skip_prk_steps": true, "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": null, "use_karras_sigmas": false}
            """);
        using var pipeline = StableDiffusionXLPipeline.FromPretrained(_dir);
        var c = pipeline.Scheduler.Config;
        Assert.Equal((0.00085, 0.012, "scaled_linear", 1, "leading", "epsilon"), (c.BetaStart, c.BetaEnd, c.BetaSchedule, c.StepsOffset, c.TimestepSpacing, c.PredictionType));
        Assert.False(c.SetAlphaToOne);
    }

    [Fact]
    public void ComponentsThatDoNotFitAreNamed()
    {
        Directory.Delete(Path.Combine(_dir, "tokenizer_2"), recursive: true);
        var e = Assert.Throws<ModelLoadException>(() => PipelineLoader.FromPretrained(_dir));
        Assert.Contains("tokenizer_2", e.Message);
        CopyTree(Path.Combine(Encoders, "tokenizer_2"), Path.Combine(_dir, "tokenizer_2"));

        // An SD 1.x UNet (no text_time) in an SDXL folder.
        Directory.Delete(Path.Combine(_dir, "unet"), recursive: true);
        CopyTree(TestPaths.Fixture("unet_sd1_tiny"), Path.Combine(_dir, "unet"));
        File.Delete(Path.Combine(_dir, "unet", "io.safetensors"));
        e = Assert.Throws<ModelLoadException>(() => PipelineLoader.FromPretrained(_dir));
        Assert.Contains("text_time", e.Message);

        // A force_zeros_for_empty_prompt that is not a boolean.
        Directory.Delete(Path.Combine(_dir, "unet"), recursive: true);
        CopyTree(TestPaths.Fixture("refenv", "sdxl_unet", "model"), Path.Combine(_dir, "unet"));
        var index = Path.Combine(_dir, "model_index.json");
        var root = JsonNode.Parse(File.ReadAllText(index))!.AsObject();
        root["force_zeros_for_empty_prompt"] = "yes";
        File.WriteAllText(index, root.ToJsonString());
        e = Assert.Throws<ModelLoadException>(() => PipelineLoader.FromPretrained(_dir));
        Assert.Contains("force_zeros_for_empty_prompt", e.Message);
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyTree(d, Path.Combine(to, Path.GetFileName(d)));
    }
}
