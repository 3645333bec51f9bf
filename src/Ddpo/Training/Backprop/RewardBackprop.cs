using Ddpo.Config;
using Ddpo.Policies;
using Ddpo.Rewards;
using Ddpo.Schedulers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>One micro-batch of reward backpropagation: the prompts, their conditioning and the batch's generator.</summary>
/// <param name="Prompts">The prompts (the differentiable reward may read them).</param>
/// <param name="Condition">Their conditioning.</param>
/// <param name="Unconditional">The negative prompt's, when the family guides with an unconditional pass.</param>
/// <param name="Generator">Every draw of the micro-batch (the algorithm's choice, the initial and per-step noise) comes from it.</param>
internal sealed record BackpropBatch(IReadOnlyList<string> Prompts, Conditioning Condition, Conditioning? Unconditional, Generator Generator);

/// <summary>The loss of a micro-batch and the rewards of its images.</summary>
/// <param name="Loss">The scalar to backpropagate: <c>-draft.reward_scale x mean reward</c>.</param>
/// <param name="Rewards">The rewards of the batch's images [B] (detached; DRaFT-LV: of the sample itself, ReFL: of the predicted x0).</param>
/// <param name="Images">Those images, [B, 3, H, W] float32 in [0, 1] on the CPU, detached: what the watch rewards score.</param>
/// <param name="GradientSteps">How many sampling steps the gradient flowed through.</param>
internal sealed record BackpropLoss(Tensor Loss, Tensor Rewards, Tensor Images, int GradientSteps);

/// <summary>
/// The reward-backpropagation algorithms on one micro-batch, for any <see cref="IDiffusionPolicy"/>: the sampling loop
/// of <see cref="IDiffusionPolicy.Sampler"/> over <see cref="IDiffusionPolicy.Predict"/>, without gradients up to the
/// algorithm's first gradient step and with them after (each such denoiser call checkpointed with
/// <c>draft.checkpointing</c>, <see cref="CheckpointedCall"/>), then the differentiable decode and reward.
/// <list type="bullet">
/// <item><c>draft</c> (DRaFT-K, Clark et al. 2023, Algorithm 1 with K): gradients through the last <c>draft.k</c> steps.</item>
/// <item><c>draft_lv</c> (DRaFT-LV): the chain without gradients to x0, then <c>draft.lv_samples</c> times: x0 noised to
/// the last step's time with fresh noise and denoised by that step with gradients; the rewards' gradients averaged.</item>
/// <item><c>refl</c> (ReFL, THUDM/ImageReward <c>ReFL.py</c>): no gradients to a step drawn from
/// <c>refl.min_step</c>..<c>refl.max_step</c>, that step's output with gradients to the predicted x0 (not stepped), decoded.</item>
/// <item><c>alignprop</c> (AlignProp, mihirp1998/AlignProp <c>main.py</c>): gradients through the last K steps, K drawn
/// from <c>alignprop.min_k</c>..<c>alignprop.max_k</c> per micro-batch (AlignProp detaches the outputs of the steps
/// before a random step; the same truncation).</item>
/// </list>
/// The loss is <c>-draft.reward_scale x mean reward</c> for all four (ReFL's paper uses <c>relu(2 - r)</c>; with the
/// image statistics here the hinge never binds).
/// </summary>
internal sealed class RewardBackprop(IDiffusionPolicy policy, DdpoConfig config, IDifferentiableReward reward, IReadOnlyList<Parameter> parameters)
{
    /// <summary>The sampling options: the <c>[sample]</c> settings, every step with <c>sample.eta</c> (no SDE window).</summary>
    public SamplingOptions Options { get; } = config.Sample.ToSamplingOptions();

    /// <summary>The loss of <paramref name="batch"/>, with its graph (when gradients are enabled).</summary>
    public BackpropLoss Loss(BackpropBatch batch)
    {
        using var scope = NewDisposeScope();
        var options = Options;
        int steps = options.NumSteps;
        var generator = batch.Generator;
        // The algorithm's draw first, then the noise: a micro-batch's noise does not depend on the algorithm's range.
        int gradFrom = config.Algorithm switch
        {
            TrainingAlgorithm.Draft => steps - config.Draft.K,
            TrainingAlgorithm.AlignProp => steps - DrawInclusive(config.AlignProp.MinK, config.AlignProp.MaxK, generator),
            TrainingAlgorithm.Refl => DrawInclusive(config.Refl.MinStep, config.Refl.MaxStep, generator),
            TrainingAlgorithm.DraftLv => steps,
            var other => throw new InvalidOperationException($"algorithm {other.ToConfigName()} is not reward backpropagation"),
        };
        var sampler = policy.Sampler(options);
        var times = sampler.Schedule(steps).to(policy.Device);
        // Float32 latents as sampling has them; float64 for a float64 denoiser (the gradient checks).
        var x = policy.InitialNoise(batch.Condition.Count, options, generator).to(policy.DType == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32);
        var stepNoise = Enumerable.Range(0, steps)
            .Select(_ => randn(x.shape, dtype: ScalarType.Float32, generator: generator).to(policy.Device)).ToArray();
        double scale = config.Draft.RewardScale;

        BackpropLoss result;
        switch (config.Algorithm)
        {
            case TrainingAlgorithm.Refl:
            {
                x = Chain(sampler, times, x, gradFrom, gradFrom, stepNoise, batch);
                var t = times[gradFrom];
                var x0 = policy.PredictOriginal(Predict(x, t, batch, withGrad: true), x, t);
                var (r, images) = Score(x0, batch);
                result = new BackpropLoss(-scale * r.mean(), r.detach(), images, 1);
                break;
            }
            case TrainingAlgorithm.DraftLv:
            {
                var x0 = Chain(sampler, times, x, steps, gradFrom, stepNoise, batch);
                Tensor sampleRewards, sampleImages;
                using (no_grad()) (sampleRewards, sampleImages) = Score(x0, batch);
                int n = config.Draft.LvSamples, last = steps - 1;
                var t = times[last];
                Tensor? total = null;
                for (int i = 0; i < n; i++)
                {
                    var eps = randn(x0.shape, dtype: ScalarType.Float32, generator: generator).to(policy.Device);
                    var z = randn(x0.shape, dtype: ScalarType.Float32, generator: generator).to(policy.Device);
                    var noised = policy.AddNoise(x0, eps, t);
                    var denoised = sampler.Step(Predict(noised, t, batch, withGrad: true), t, noised, options.EtaAt(last), noise: z).Next;
                    var term = Score(denoised, batch).Rewards.mean();
                    total = total is null ? term : total + term;
                }
                result = new BackpropLoss(-scale * total! / n, sampleRewards, sampleImages, 1);
                break;
            }
            default:
            {
                var x0 = Chain(sampler, times, x, steps, gradFrom, stepNoise, batch);
                var (r, images) = Score(x0, batch);
                result = new BackpropLoss(-scale * r.mean(), r.detach(), images, steps - gradFrom);
                break;
            }
        }
        result.Loss.MoveToOuterDisposeScope();
        result.Rewards.MoveToOuterDisposeScope();
        result.Images.MoveToOuterDisposeScope();
        return result;
    }

    /// <summary>
    /// Steps [0, <paramref name="end"/>) from <paramref name="x"/>: without gradients before <paramref name="gradFrom"/>
    /// (so the gradient stops at that step's input), with them from it on. Returns the latents after the last step.
    /// </summary>
    private Tensor Chain(IStepSampler sampler, Tensor times, Tensor x, int end, int gradFrom, Tensor[] stepNoise, BackpropBatch batch)
    {
        for (int i = 0; i < end; i++)
        {
            using var step = NewDisposeScope();
            var t = times[i];
            bool withGrad = i >= gradFrom;
            Tensor next;
            using ((IDisposable?)(withGrad ? null : no_grad()))
            {
                next = sampler.Step(Predict(x, t, batch, withGrad), t, x, Options.EtaAt(i), noise: stepNoise[i]).Next;
            }
            x = next.MoveToOuterDisposeScope();
        }
        return x;
    }

    /// <summary>The guided denoiser output; checkpointed when it carries gradients and <c>draft.checkpointing</c> is on.</summary>
    private Tensor Predict(Tensor x, Tensor t, BackpropBatch batch, bool withGrad)
    {
        // The conditioning belongs to the caller and outlives the backward pass; the time is this loss's and is kept.
        Tensor Call(Tensor input, IReadOnlyList<Tensor> time) => policy.Predict(input, time[0], batch.Condition, batch.Unconditional, Options.GuidanceScale);
        return withGrad && config.Draft.Checkpointing ? CheckpointedCall.Apply(Call, x, [t], parameters) : Call(x, [t]);
    }

    /// <summary>
    /// The differentiable reward of the decoded <paramref name="latents"/>, [B] float32, and the images it scored
    /// (detached, float32 on the CPU).
    /// </summary>
    private (Tensor Rewards, Tensor Images) Score(Tensor latents, BackpropBatch batch)
    {
        using var scope = NewDisposeScope();
        var images = policy.DecodeDifferentiable(latents);
        var r = reward.ScoreDifferentiable(images, batch.Prompts);
        if (r.dim() != 1 || r.shape[0] != latents.shape[0])
        {
            throw new InvalidOperationException($"reward '{reward.Name}' returned shape [{string.Join(", ", r.shape)}] for {latents.shape[0]} images");
        }
        var scored = images.detach().to(ScalarType.Float32).cpu();
        return (r.MoveToOuterDisposeScope(), scored.MoveToOuterDisposeScope());
    }

    /// <summary>A uniform integer in [<paramref name="low"/>, <paramref name="high"/>] from <paramref name="generator"/>.</summary>
    private static int DrawInclusive(int low, int high, Generator generator)
    {
        using var draw = randint(low, high + 1, [1], dtype: ScalarType.Int64, generator: generator);
        return (int)draw.item<long>();
    }
}
