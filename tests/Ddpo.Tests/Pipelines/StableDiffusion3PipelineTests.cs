using Ddpo.Models.Loading;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Pipelines;

/// <summary>
/// The SD3 pipeline against diffusers 0.31's <c>StableDiffusion3Pipeline</c> and Flow-GRPO's <c>pipeline_with_logprob</c>
/// on the tiny pipeline of <c>refenv/sd3_pipeline</c> (io.json: the calls).
/// </summary>
public sealed class StableDiffusion3PipelineTests
{
    private static readonly string Folder = TestPaths.Fixture("refenv", "sd3_pipeline");
    private static readonly string[] Prompts = ["a photo of a cat riding a horse", "An oil painting of a lighthouse at sunset, studio lighting!"];
    private static readonly string[] Negatives = ["", "blurry, low quality"];

    private static Dictionary<string, Tensor> Io(string name = "io.safetensors") => SafetensorsFile.Load(Path.Combine(Folder, name));

    [Fact]
    public void LoaderPicksTheSd3PipelineFromModelIndex()
    {
        using var pipeline = PipelineLoader.FromPretrained(Path.Combine(Folder, "pipeline"), maxSequenceLength: 32);
        var sd3 = Assert.IsType<StableDiffusion3Pipeline>(pipeline);
        Assert.Equal(32, sd3.MaxSequenceLength);
        Assert.Equal("transformer", pipeline.Policy.DenoiserName);
        Assert.Equal(16 * 8, pipeline.DefaultImageSize);
    }

    [Fact]
    public void EncodePromptMatchesDiffusers()
    {
        using var scope = NewDisposeScope();
        using var pipeline = StableDiffusion3Pipeline.FromPretrained(Path.Combine(Folder, "pipeline"));
        pipeline.MaxSequenceLength = 32;
        var io = Io();
        var (embeds, pooled) = pipeline.EncodePrompt(Prompts);
        TensorAssert.Close(io["prompt_embeds"], embeds, what: "prompt_embeds");
        TensorAssert.Close(io["pooled_prompt_embeds"], pooled, what: "pooled_prompt_embeds");
        var (negEmbeds, negPooled) = pipeline.EncodePrompt(Negatives);
        TensorAssert.Close(io["negative_prompt_embeds"], negEmbeds, what: "negative_prompt_embeds");
        TensorAssert.Close(io["negative_pooled_prompt_embeds"], negPooled, what: "negative_pooled_prompt_embeds");
    }

    [Fact]
    public void GuidedOdeSamplingMatchesDiffusersStepByStep()
    {
        using var scope = NewDisposeScope();
        using var pipeline = StableDiffusion3Pipeline.FromPretrained(Path.Combine(Folder, "pipeline"));
        var io = Io();
        var policy = (StableDiffusion3Policy)pipeline.Policy;
        using var condition = StableDiffusion3Policy.Condition(io["prompt_embeds"].clone(), io["pooled_prompt_embeds"].clone());
        using var negative = StableDiffusion3Policy.Condition(io["negative_prompt_embeds"].clone(), io["negative_pooled_prompt_embeds"].clone());
        // Noise level 0: the Euler ODE step diffusers' scheduler takes.
        var options = new SamplingOptions { NumSteps = 4, GuidanceScale = 7.0, Eta = 0, Height = 48, Width = 80, RecordTrajectory = true };
        using var rollout = policy.SampleFrom(io["latents_in"], condition, negative, options, new Generator(0), null);
        TensorAssert.Close(io["step_timesteps"], rollout.Times, what: "timesteps");
        for (int i = 0; i < 4; i++)
        {
            TensorAssert.Close(io[$"step_latents.{i}"], rollout.Latents![.., i + 1], what: $"latents after step {i}");
        }
        TensorAssert.Close(io["latents_out"], rollout.Final, what: "final latents");
        var images = pipeline.DecodeToImages(rollout.Final);
        TensorAssert.Close(io["image_np"], images.permute(0, 2, 3, 1), what: "decoded image");
    }

    [Fact]
    public void RescoringFlowGrpoTrajectoryReproducesItsLogProbs()
    {
        using var scope = NewDisposeScope();
        using var pipeline = StableDiffusion3Pipeline.FromPretrained(Path.Combine(Folder, "pipeline"));
        var io = Io();
        var fg = Io("flowgrpo.safetensors");
        var policy = pipeline.Policy;
        using var condition = StableDiffusion3Policy.Condition(io["prompt_embeds"].clone(), io["pooled_prompt_embeds"].clone());
        using var negative = StableDiffusion3Policy.Condition(io["negative_prompt_embeds"].clone(), io["negative_pooled_prompt_embeds"].clone());
        var options = new SamplingOptions { NumSteps = 10, GuidanceScale = 4.5, Eta = 0.7 };
        Assert.Equal(10, policy.StochasticSteps(options));
        var times = fg["timesteps"];
        for (int i = 0; i < 10; i++)
        {
            using var step = NewDisposeScope();
            var t = times[i].expand(2).contiguous();
            var batch = new TransitionBatch(fg[$"all_latents.{i}"], fg[$"all_latents.{i + 1}"], t, condition, negative);
            var r = policy.Evaluate(batch, options);
            TensorAssert.Close(fg[$"all_log_probs.{i}"], r.LogProb, atol: 1e-4, rtol: 1e-4, what: $"log-prob of step {i}");
        }
    }

    [Fact]
    public void SdeSamplingRecordsLogProbsThatRescoringReproduces()
    {
        using var scope = NewDisposeScope();
        using var pipeline = StableDiffusion3Pipeline.FromPretrained(Path.Combine(Folder, "pipeline"));
        pipeline.MaxSequenceLength = 32;
        var policy = pipeline.Policy;
        var options = new SamplingOptions { NumSteps = 5, GuidanceScale = 3.0, Eta = 0.7, Height = 32, Width = 32, RecordTrajectory = true };
        var (condition, negative) = PolicySampling.Conditions(policy, Prompts, options);
        using (condition)
        using (negative)
        {
            using var rollout = policy.Sample(condition, negative, options, new Generator(3), null);
            Assert.Equal(new long[] { 2, 6, 16, 4, 4 }, rollout.Latents!.shape);
            for (int i = 0; i < 5; i++)
            {
                var batch = new TransitionBatch(rollout.Latents[.., i], rollout.Latents[.., i + 1], rollout.Times[i].expand(2).contiguous(), condition, negative);
                var r = policy.Evaluate(batch, options);
                TensorAssert.Close(rollout.LogProbs![.., i], r.LogProb, atol: 1e-4, rtol: 1e-5, what: $"log-prob of step {i}");
            }
            // The same seed gives the same images; another seed others.
            using var again = policy.Sample(condition, negative, options, new Generator(3), null);
            TensorAssert.Close(rollout.Final, again.Final, atol: 0, rtol: 0, what: "same seed");
            using var other = policy.Sample(condition, negative, options, new Generator(4), null);
            Assert.True((other.Final - rollout.Final).abs().max().item<float>() > 1e-2);
        }
    }

    [Fact]
    public void MissingComponentIsNamed()
    {
        var dir = TestPaths.NewTempDir();
        try
        {
            CopyTree(Path.Combine(Folder, "pipeline"), dir);
            Directory.Delete(Path.Combine(dir, "text_encoder_2"), recursive: true);
            var e = Assert.Throws<ModelLoadException>(() => PipelineLoader.FromPretrained(dir));
            Assert.Contains("text_encoder_2", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyTree(d, Path.Combine(to, Path.GetFileName(d)));
    }
}
