using Ddpo.Models.Loading;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Pipelines;

/// <summary>
/// The FLUX pipeline against diffusers 0.31's <c>FluxPipeline</c> on the tiny pipeline of <c>refenv/flux_pipeline</c>
/// (io.json: the call): encode_prompt, mu, the guidance-embedded Euler ODE step by step on packed latents, the image.
/// </summary>
public sealed class FluxPipelineTests
{
    private static readonly string Folder = TestPaths.Fixture("refenv", "flux_pipeline");
    private static readonly string[] Prompts = ["a photo of a cat riding a horse", "An oil painting of a lighthouse at sunset, studio lighting!"];

    private static Dictionary<string, Tensor> Io() => SafetensorsFile.Load(Path.Combine(Folder, "io.safetensors"));

    [Fact]
    public void LoaderPicksTheFluxPipelineAndEncodePromptMatchesDiffusers()
    {
        using var scope = NewDisposeScope();
        using var pipeline = PipelineLoader.FromPretrained(Path.Combine(Folder, "pipeline"), maxSequenceLength: 32);
        var flux = Assert.IsType<FluxPipeline>(pipeline);
        Assert.Equal(32, flux.MaxSequenceLength);
        Assert.Equal("transformer", pipeline.Policy.DenoiserName);
        Assert.False(pipeline.Policy.NeedsUnconditional(new SamplingOptions { GuidanceScale = 3.5 }));
        var io = Io();
        var (embeds, pooled) = flux.EncodePrompt(Prompts);
        TensorAssert.Close(io["prompt_embeds"], embeds, what: "prompt_embeds");
        TensorAssert.Close(io["pooled_prompt_embeds"], pooled, what: "pooled_prompt_embeds");
    }

    [Fact]
    public void PackingAndImageIdsAreDiffusers()
    {
        using var scope = NewDisposeScope();
        var io = Io();
        var packed = FluxLatents.Pack(io["latents_unpacked_in"]);
        TensorAssert.Close(io["latents_in"], packed, atol: 0, rtol: 0, what: "_pack_latents");
        TensorAssert.Close(io["latents_out_unpacked"], FluxLatents.Unpack(io["latents_out"], 6, 10), atol: 0, rtol: 0, what: "_unpack_latents");
        var ids = FluxLatents.ImageIds(6, 10, CPU);
        Assert.Equal(new long[] { 15, 3 }, ids.shape);
        // (0, row, column) of each 2x2 patch, rows of 5 patches.
        Assert.Equal(new float[] { 0, 0, 1 }, ids[1].data<float>().ToArray());
        Assert.Equal(new float[] { 0, 1, 0 }, ids[5].data<float>().ToArray());
        Assert.Equal(new float[] { 0, 2, 4 }, ids[14].data<float>().ToArray());
    }

    [Fact]
    public void GuidanceEmbeddedOdeSamplingMatchesDiffusersStepByStep()
    {
        using var scope = NewDisposeScope();
        using var pipeline = FluxPipeline.FromPretrained(Path.Combine(Folder, "pipeline"));
        var io = Io();
        var policy = (FluxPolicy)((ITextToImagePipeline)pipeline).Policy;
        using var condition = StableDiffusion3Policy.Condition(io["prompt_embeds"].clone(), io["pooled_prompt_embeds"].clone());
        // Noise level 0: the Euler ODE step diffusers' scheduler takes; mu from the 15 image tokens.
        Assert.Equal(0.4592057291666667, pipeline.Scheduler.CalculateShift(15), 12);
        var options = new SamplingOptions { NumSteps = 4, GuidanceScale = 3.5, Eta = 0, Height = 48, Width = 80, RecordTrajectory = true };
        using var rollout = policy.SampleFrom(io["latents_unpacked_in"], condition, options, new Generator(0), null);
        TensorAssert.Close(io["step_timesteps"], rollout.Times, what: "timesteps");
        for (int i = 0; i < 4; i++)
        {
            TensorAssert.Close(io[$"step_latents.{i}"], FluxLatents.Pack(rollout.Latents![.., i + 1]), what: $"latents after step {i}");
        }
        TensorAssert.Close(io["latents_out_unpacked"], rollout.Final, what: "final latents");
        var images = pipeline.DecodeToImages(rollout.Final);
        TensorAssert.Close(io["image_np"], images.permute(0, 2, 3, 1), what: "decoded image");
    }

    [Fact]
    public void SdeSamplingRecordsLogProbsThatRescoringReproduces()
    {
        using var scope = NewDisposeScope();
        using var pipeline = FluxPipeline.FromPretrained(Path.Combine(Folder, "pipeline"));
        pipeline.MaxSequenceLength = 16;
        var policy = ((ITextToImagePipeline)pipeline).Policy;
        foreach (var sde in new[] { "flow_sde", "dance_sde", "cps" })
        {
            var options = new SamplingOptions { NumSteps = 4, GuidanceScale = 3.5, Eta = 0.7, Height = 32, Width = 32, RecordTrajectory = true, SdeType = sde };
            using var condition = policy.Encode(Prompts);
            using var rollout = policy.Sample(condition, null, options, new Generator(5), null);
            Assert.Equal(new long[] { 2, 5, 16, 4, 4 }, rollout.Latents!.shape);
            for (int i = 0; i < policy.StochasticSteps(options); i++)
            {
                var batch = new TransitionBatch(rollout.Latents[.., i], rollout.Latents[.., i + 1], rollout.Times[i].expand(2).contiguous(), condition, null);
                var r = policy.Evaluate(batch, options);
                TensorAssert.Close(rollout.LogProbs![.., i], r.LogProb, atol: 1e-4, rtol: 1e-5, what: $"{sde}: log-prob of step {i}");
            }
        }
    }
}
