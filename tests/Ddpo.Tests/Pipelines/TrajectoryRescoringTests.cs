using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Pipelines;
using Ddpo.Schedulers;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Pipelines;

public sealed class TrajectoryRescoringTests
{
    [Fact]
    public void RescoringARecordedCfgTrajectoryReproducesItsLogProbs()
    {
        // What DDPO training does: re-evaluate log p(x_{t-1} | x_t) of recorded latents under the
        // (unchanged) policy with the same guidance. Reference: ddpo-pytorch's pipeline_with_logprob.
        var f = SafetensorsFile.Load(TestPaths.Fixture("trajectory_cfg.safetensors"));
        using var unet = UNet2DConditionModel.FromPretrained(TestPaths.Fixture("unet_sd1_tiny"));
        using var scheduler = new DdimScheduler(DdimSchedulerConfig.StableDiffusion());
        var timesteps = f["timesteps"].data<long>().ToArray();
        scheduler.SetTimesteps(timesteps.Length);
        Assert.Equal(timesteps, scheduler.Timesteps);
        double guidance = f["guidance_scale"].item<float>(), eta = f["eta"].item<float>();
        var latents = f["latents"];
        using var _ = no_grad();
        var logProbs = new List<Tensor>();
        for (int i = 0; i < timesteps.Length; i++)
        {
            var x = latents[.., i];
            var t = full(new long[] { x.shape[0] }, timesteps[i], dtype: ScalarType.Int64);
            var eps = GuidedNoisePredictor.Predict(unet, x, t, f["prompt_embeds"], f["negative_embeds"], guidance, ScalarType.Float32);
            logProbs.Add(scheduler.Step(eps, t, x, eta, prevSample: latents[.., i + 1]).LogProb);
        }
        TensorAssert.Close(f["log_probs"], stack(logProbs, 1), what: "re-scored log-probs");
    }
}
