using Ddpo.Models.Loading;
using Ddpo.Schedulers;
using Ddpo.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Schedulers;

/// <summary>
/// A whole Flow-GRPO trajectory (refenv/sd3_pipeline <c>flowgrpo.*</c>, copied to flowgrpo_sde/sd3_pipeline:
/// <c>pipeline_with_logprob</c>, 10 SDE steps, noise level 0.7, <c>torch.manual_seed(72)</c>) re-scored by
/// <see cref="FlowSdeSampler"/>. The transformer's outputs are not recorded, but the noise is reproducible (the
/// global torch generator seeded 72, one draw per step), so each step's mean is the recorded next latents minus
/// std·noise and the velocity follows from the sampler's own mean, which is affine in it. Re-scoring the recorded
/// latents with that velocity must give Flow-GRPO's <c>all_log_probs</c>: this checks the schedule, the time-to-sigma
/// mapping, the std of every step and the log-probability over the trajectory (the mean itself is checked per step
/// by <see cref="FlowSamplerTests"/>).
/// </summary>
public sealed class FlowGrpoTrajectoryTests
{
    private const double NoiseLevel = 0.7;

    [Fact]
    public void RescoringTheRecordedTrajectoryGivesFlowGrpoLogProbs()
    {
        using var scope = NewDisposeScope();
        var io = SafetensorsFile.Load(TestPaths.Fixture("refenv", "sd3_pipeline", "flowgrpo.safetensors"));
        using var scheduler = FlowMatchEulerDiscreteScheduler.FromConfigFile(TestPaths.Fixture("refenv", "flowgrpo_sde", "scheduler", "scheduler_config.json"));
        var sampler = new FlowSdeSampler(scheduler);
        var times = sampler.Schedule(10);
        TensorAssert.Close(io["timesteps"], times, atol: 0, rtol: 0, what: "timesteps");
        TensorAssert.Close(io["latents_in"], io["all_latents.0"], atol: 0, rtol: 0, what: "initial latents");

        var generator = new Generator(72);
        for (int i = 0; i < 10; i++)
        {
            var x = io[$"all_latents.{i}"];
            var recorded = io[$"all_latents.{i + 1}"];
            var t = times[i].unsqueeze(0);
            var noise = randn(x.shape, generator: generator);
            var atZero = sampler.Step(zeros_like(x), t, x, NoiseLevel, next: recorded);
            var slope = sampler.Step(ones_like(x), t, x, NoiseLevel, next: recorded).Mean - atZero.Mean;
            var mean = recorded - atZero.Std * noise;
            var velocity = (mean - atZero.Mean) / slope;

            var rescored = sampler.Step(velocity, t, x, NoiseLevel, next: recorded);
            TensorAssert.Close(io[$"all_log_probs.{i}"], rescored.LogProb, what: $"log_prob of step {i}");
            var drawn = sampler.Step(velocity, t, x, NoiseLevel, noise: noise);
            TensorAssert.Close(recorded, drawn.Next, what: $"latents after step {i}");
        }
    }
}
