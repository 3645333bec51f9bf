using Ddpo.Policies;
using Ddpo.Runtime;
using Ddpo.Schedulers;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>
/// What the flow-matching policies (SD3, FLUX) share around their denoiser: the sampling loop over a flow sampler's
/// schedule and rectified flow's regression loss. Each policy gives its velocity as a function of (latents, times).
/// </summary>
internal static class FlowPolicySteps
{
    /// <summary>
    /// The denoising loop from <paramref name="initialLatents"/> (not taken over): the times and every step's noise go
    /// to the device before the loop (noise drawn on the CPU from <paramref name="generator"/>, so a seed gives the same
    /// trajectory on every device), then one <paramref name="velocity"/> call and one sampler step per time.
    /// </summary>
    public static Rollout Sample(IStepSampler sampler, Func<Tensor, Tensor, Tensor> velocity, Tensor initialLatents, Device device,
        SamplingOptions options, Generator? generator, IProgress<int>? progress)
    {
        using var outer = NewDisposeScope();
        using var noGrad = no_grad();
        var schedule = sampler.Schedule(options.NumSteps);
        long steps = schedule.shape[0];
        var shape = initialLatents.shape;
        var latents = HostCopy.ToDevice(initialLatents.to(ScalarType.Float32, copy: true), device);
        var times = HostCopy.ToDevice(schedule, device);
        var stepNoise = Enumerable.Range(0, (int)steps)
            .Select(_ => HostCopy.ToDevice(randn(shape, dtype: ScalarType.Float32, generator: generator), device)).ToList();
        var recorded = options.RecordTrajectory ? new List<Tensor> { latents } : null;
        var logProbs = options.RecordTrajectory ? new List<Tensor>() : null;
        for (int i = 0; i < steps; i++)
        {
            using var step = NewDisposeScope();
            var t = times[i];
            var r = sampler.Step(velocity(latents, t), t, latents, options.EtaAt(i), noise: stepNoise[i]);
            latents = r.Next.MoveToOuterDisposeScope();
            if (recorded is not null)
            {
                recorded.Add(latents);
                logProbs!.Add(r.LogProb.MoveToOuterDisposeScope());
            }
            progress?.Report(i + 1);
        }
        var rollout = new Rollout(latents, times, recorded is null ? null : stack(recorded, 1), logProbs is null ? null : stack(logProbs, 1));
        rollout.Final.MoveToOuterDisposeScope();
        rollout.Times.MoveToOuterDisposeScope();
        rollout.Latents?.MoveToOuterDisposeScope();
        rollout.LogProbs?.MoveToOuterDisposeScope();
        return rollout;
    }

    /// <summary>
    /// Rectified flow's objective (SD3's and FLUX's): sigma ~ U(0, 1) per sample, x_sigma = (1 - sigma) x_0 + sigma noise,
    /// <paramref name="velocity"/> at times sigma x <paramref name="numTrainTimesteps"/> regressed onto noise - x_0.
    /// Draws sigma, then the noise (<see cref="SkipDraws"/> draws the same).
    /// </summary>
    public static Tensor DenoisingLoss(Tensor x0, Generator generator, int numTrainTimesteps, Func<Tensor, Tensor, Tensor> velocity)
    {
        using var scope = NewDisposeScope();
        var device = x0.device;
        var sigma = rand([x0.shape[0]], dtype: ScalarType.Float32, generator: generator).to(device);
        var noise = randn(x0.shape, generator: generator).to(device);
        var s = sigma.view(-1, 1, 1, 1);
        var prediction = velocity((1 - s) * x0 + s * noise, sigma * numTrainTimesteps);
        return (prediction - (noise - x0)).pow(2).flatten(1).mean([1L]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Rectified flow's forward process at scheduler times (sigma x 1000) <paramref name="times"/> (0-d or [B]):
    /// <c>(1 - sigma) x0 + sigma noise</c>, differentiable; in <paramref name="x0"/>'s dtype.
    /// </summary>
    public static Tensor AddNoise(Tensor x0, Tensor noise, Tensor times)
    {
        using var scope = NewDisposeScope();
        var s = Sigma(times, x0);
        return ((1 - s) * x0 + s * noise.to(x0.dtype, x0.device)).MoveToOuterDisposeScope();
    }

    /// <summary>The clean sample a velocity <paramref name="velocity"/> implies at <paramref name="latents"/> and times sigma x 1000: <c>x - sigma v</c>.</summary>
    public static Tensor PredictOriginal(Tensor velocity, Tensor latents, Tensor times)
    {
        using var scope = NewDisposeScope();
        var x = latents.to(velocity.dtype);
        return (x - Sigma(times, x) * velocity).MoveToOuterDisposeScope();
    }

    /// <summary>sigma = time / 1000 as [B, 1, 1, 1] (or a scalar) in <paramref name="like"/>'s dtype and device.</summary>
    private static Tensor Sigma(Tensor times, Tensor like)
    {
        var s = times.to(like.dtype, like.device) / 1000;
        return s.dim() == 0 ? s : s.view(-1, 1, 1, 1);
    }

    /// <summary>Draws what <see cref="DenoisingLoss"/> draws for clean samples of <paramref name="x0Shape"/>, and discards it.</summary>
    public static void SkipDraws(long[] x0Shape, Generator generator)
    {
        using var scope = NewDisposeScope();
        rand([x0Shape[0]], dtype: ScalarType.Float32, generator: generator);
        randn(x0Shape, generator: generator);
    }
}
