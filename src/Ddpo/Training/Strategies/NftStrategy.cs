using Ddpo.Schedulers;
using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Policies;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// DiffusionNFT (<c>algorithm = "nft"</c>; NVlabs/DiffusionNFT <c>scripts/train_nft_sd3.py</c> at 24af555): no
/// log-probabilities, so the rollouts may be the ODE. Advantages are GRPO's (within each prompt's group); every sample's
/// clean final latents x0 get, at each trained step, a time (<see cref="NftConfig.TimestepDistribution"/>) and fresh
/// noise on the forward process x_t = (1 - sigma) x0 + sigma noise; the loss (<see cref="NftLoss"/>) compares the
/// current velocity with the old policy's (<see cref="NftOldPolicy"/>, swapped in without gradients) and, with
/// <c>nft.kl_coef</c> &gt; 0, the base model's. Flow-matching families only: the loss is on velocities. Guidance is
/// CFG-free: SD3 at guidance 1, FLUX through its guidance embedding (<c>sample.guidance_scale</c>).
/// </summary>
internal sealed class NftStrategy : IUpdateStrategy
{
    /// <summary>The transformer's timestep is sigma times this (upstream's <c>timesteps / 1000.0</c>).</summary>
    public const double TimestepScale = 1000.0;

    private readonly IDiffusionPolicy _policy;
    private readonly DdpoConfig _config;
    private readonly NftOldPolicy _old;
    private readonly ReferencePolicy? _reference;
    // "schedule": each row's order of the schedule's steps, drawn at the micro-batch's first step (upstream's perms_time).
    private readonly Dictionary<int, long[][]> _orders = [];
    private EpochSamples? _ordersOf;

    /// <summary>The strategy on <paramref name="policy"/> with the run's old policy and (nft.kl_coef &gt; 0) reference.</summary>
    public NftStrategy(IDiffusionPolicy policy, DdpoConfig config, NftOldPolicy old, ReferencePolicy? reference)
    {
        Check(config, policy);
        _policy = policy;
        _config = config;
        _old = old;
        _reference = reference;
    }

    /// <summary>
    /// Refuses what DiffusionNFT cannot train: a family whose denoiser does not predict a velocity (the UNet/DDIM family)
    /// and classifier-free guidance (<see cref="ConfigException"/>s naming the key).
    /// </summary>
    public static void Check(DdpoConfig config, IDiffusionPolicy policy)
    {
        if (config.Algorithm != TrainingAlgorithm.Nft) return;
        if (policy.Prediction != PredictionType.Velocity)
        {
            throw new ConfigException($"algorithm = \"nft\" needs a flow-matching family (SD3, FLUX): its loss is on the denoiser's velocity, and {policy.Family} predicts {policy.Prediction.ToString().ToLowerInvariant()}; use ddpo_is, ddpo_sf, grpo or rwr");
        }
        if (policy.NeedsUnconditional(config.Sample.ToSamplingOptions()))
        {
            throw new ConfigException($"algorithm = \"nft\" is CFG-free (DiffusionNFT samples and trains at guidance 1): {policy.Family} with sample.guidance_scale = {ConfigSchema.Fmt(config.Sample.GuidanceScale)} needs a classifier-free pass; set sample.guidance_scale = 1");
        }
    }

    /// <inheritdoc />
    public bool OnTransitions => false;

    /// <inheritdoc />
    public bool OneStepPerEpoch => false;

    /// <inheritdoc />
    public UpdateTargets Targets(EpochSamples samples)
    {
        var groups = samples.Groups
            ?? throw new InvalidOperationException("algorithm = \"nft\": the epoch's samples carry no group ids");
        var result = GroupAdvantages.Compute(groups, samples.Rewards);
        return new UpdateTargets(null, result.Advantages, new Dictionary<string, object?>
        {
            ["groups"] = result.Groups,
            ["zero_std_groups"] = result.ZeroStdGroups,
        });
    }

    /// <inheritdoc />
    public MicroLoss Loss(MicroBatch batch)
    {
        var s = batch.Samples;
        var x0 = s.NextLatents[batch.Rows, s.Steps - 1].to(ScalarType.Float32);
        var device = x0.device;
        var (times, noiseCpu) = Draw(batch, x0.shape);
        var noise = noiseCpu.to(device);
        var sigma = (times / TimestepScale).to(ScalarType.Float32);
        var sv = sigma.view([-1, .. Enumerable.Repeat(1L, (int)x0.dim() - 1)]);
        var xt = (1 - sv) * x0 + sv * noise;
        var condition = s.Condition.Slice(batch.Start, batch.Start + batch.Count);
        double guidance = _config.Sample.GuidanceScale;
        Tensor vOld;
        using (_old.Applied())
        using (no_grad())
        {
            vOld = _policy.Predict(xt, times, condition, null, guidance);
        }
        var vTheta = _policy.Predict(xt, times, condition, null, guidance);
        var vRef = _reference?.Predict(xt, times, condition, null, guidance);
        var terms = NftLoss.Compute(xt, x0, sigma, vTheta, vOld, vRef, batch.WeightTensor(device), _config.Nft.Beta,
            _config.Train.AdvClipMax, _config.Nft.KlCoef);
        return new MicroLoss(terms.Loss, KlToBase: terms.Kl);
    }

    /// <inheritdoc />
    public void Skip(MicroBatch batch)
    {
        var s = batch.Samples;
        using var scope = NewDisposeScope();
        Draw(batch, s.NextLatents[batch.Rows, s.Steps - 1].shape);
    }

    /// <summary>
    /// The micro-batch's times (on the samples' device, in the units of <see cref="EpochSamples.Times"/>) and noise (on the
    /// CPU), drawn from the batch's generator: for "schedule" the rows' step orders at the first step, then the noise; for
    /// "uniform" sigma, then the noise.
    /// </summary>
    private (Tensor Times, Tensor Noise) Draw(MicroBatch batch, long[] x0Shape)
    {
        var s = batch.Samples;
        var gen = batch.Generator;
        Tensor times;
        if (_config.Nft.TimestepDistribution == "uniform")
        {
            times = rand([batch.Count], dtype: ScalarType.Float32, generator: gen).to(s.Times.device) * TimestepScale;
        }
        else
        {
            if (!ReferenceEquals(_ordersOf, s))
            {
                _orders.Clear();
                _ordersOf = s;
            }
            if (batch.Step == 0 || !_orders.ContainsKey(batch.Start))
            {
                _orders[batch.Start] = Enumerable.Range(0, batch.Count)
                    .Select(_ => { using var p = randperm(s.Steps, generator: gen); return p.data<long>().ToArray(); }).ToArray();
            }
            var columns = _orders[batch.Start].Select(order => order[batch.Step]).ToArray();
            using var index = tensor(columns, dtype: ScalarType.Int64, device: s.Times.device).unsqueeze(1);
            times = s.Times[batch.Rows].gather(1, index).squeeze(1).to(ScalarType.Float32);
        }
        var noise = randn(x0Shape, dtype: ScalarType.Float32, generator: gen);
        return (times, noise);
    }
}
