using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Schedulers;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Pipelines;

/// <summary>
/// Plain sampling steps as diffusers' DDIMScheduler does (final_alpha_cumprod after the last step); recorded DDPO
/// trajectories can step as ddpo-pytorch does. Run on a model whose scheduler has set_alpha_to_one = true, where
/// the two differ.
/// </summary>
public sealed class FinalStepSamplingTests
{
    [Fact]
    public void PlainSamplingIsDiffusersLoopAndDiffersFromDdpoFinalStep()
    {
        var dir = TinyModels.PixelWithScheduler(c => c with { SetAlphaToOne = true });
        try
        {
            using var scope = NewDisposeScope();
            using var pipe = TextToImagePipeline.FromPretrained(dir);
            Assert.Equal(1f, pipe.Scheduler.FinalAlphaCumprod);
            var options = new SamplingOptions { NumSteps = 4, Eta = 0.0, GuidanceScale = 1.0 };
            using var plain = pipe.Sample(["a cat"], options, new Generator(21));
            using var ddpo = pipe.Sample(["a cat"], options with { FinalStep = DdimFinalStep.Ddpo }, new Generator(21));

            // diffusers' pipeline loop, written out: the same noise, unet and DDIMScheduler.step.
            var generator = new Generator(21);
            var latents = randn([1, pipe.LatentChannels, pipe.DefaultImageSize, pipe.DefaultImageSize], generator: generator);
            var embeds = pipe.EncodePrompts(["a cat"]);
            pipe.Scheduler.SetTimesteps(4);
            using (no_grad())
            {
                foreach (var t in pipe.Scheduler.Timesteps)
                {
                    var tt = tensor(t);
                    var eps = pipe.PredictNoise(latents, tt, embeds, null, 1.0);
                    latents = pipe.Scheduler.Step(eps, tt, latents, 0.0).PrevSample;
                }
            }
            TensorAssert.Close(pipe.DecodeToImages(latents), plain.Images, atol: 1e-6, rtol: 0, what: "plain sampling vs diffusers' loop");
            Assert.True((plain.Images - ddpo.Images).abs().max().item<float>() > 1e-4,
                "the ddpo final step (alphas_cumprod[0]) should give other images than diffusers' (alpha 1)");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void DiffusersFinalStepWithSetAlphaToOneRecordsADeterministicLastStep()
    {
        var dir = TinyModels.PixelWithScheduler(c => c with { SetAlphaToOne = true });
        try
        {
            using var scope = NewDisposeScope();
            using var pipe = TextToImagePipeline.FromPretrained(dir);
            var options = new SamplingOptions { NumSteps = 3, Eta = 1.0, GuidanceScale = 1.0, RecordTrajectory = true };
            using var diffusers = pipe.Sample(["a cat", "a dog"], options, new Generator(4));
            using var ddpo = pipe.Sample(["a cat", "a dog"], options with { FinalStep = DdimFinalStep.Ddpo }, new Generator(4));
            var lp = diffusers.Trajectory!.LogProbs;
            Assert.True(lp[.., ..2].isfinite().all().item<bool>(), "the stochastic steps have log-probabilities");
            Assert.False(lp[.., 2].isfinite().any().item<bool>(), "diffusers' last step (zero variance) has no log-probability");
            Assert.True(ddpo.Trajectory!.LogProbs.isfinite().all().item<bool>(), "ddpo-pytorch's last step is stochastic");
            // Up to the last step both modes walk the same path.
            TensorAssert.Close(ddpo.Trajectory.Latents[.., ..3], diffusers.Trajectory.Latents[.., ..3], atol: 0, rtol: 0, what: "steps before the last");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
