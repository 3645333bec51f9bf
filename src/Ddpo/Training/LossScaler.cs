using System.Globalization;
using Ddpo.Runs;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// Dynamic loss scaling with the semantics of <c>torch.amp.GradScaler</c> (which accelerate's
/// <c>mixed_precision = "fp16"</c>, and so ddpo-pytorch, trains under): the loss is multiplied by
/// <see cref="Scale"/> before the backward pass so that gradients of 1e-7..1e-6 per element (typical at a DDPO
/// UNet's output) do not underflow in fp16; before clipping and the optimizer step the gradients are divided
/// by the scale again. If any gradient is infinite or NaN the step is skipped, the scale is multiplied by
/// <see cref="BackoffFactor"/> and the growth counter reset; after <see cref="GrowthInterval"/> consecutive good
/// steps the scale is multiplied by <see cref="GrowthFactor"/> (kept only if still finite). Like GradScaler the
/// scale is a float32 value. A disabled scaler (fp32 / bf16 models by default) has scale 1 and changes nothing.
/// </summary>
internal sealed class LossScaler
{
    /// <summary>GradScaler's <c>init_scale</c>: 2^16.</summary>
    public const float DefaultInitScale = 65536f;

    /// <summary>GradScaler's <c>growth_interval</c>.</summary>
    public const int DefaultGrowthInterval = 2000;

    /// <summary>GradScaler's <c>growth_factor</c>.</summary>
    public const float GrowthFactor = 2f;

    /// <summary>GradScaler's <c>backoff_factor</c>.</summary>
    public const float BackoffFactor = 0.5f;

    /// <summary>A scaler; disabled, it has scale 1 and only passes through.</summary>
    public LossScaler(bool enabled, float initScale = DefaultInitScale, int growthInterval = DefaultGrowthInterval)
    {
        if (!(initScale > 0) || !float.IsFinite(initScale))
        {
            throw new ArgumentOutOfRangeException(nameof(initScale), initScale, "the initial loss scale must be a positive finite number");
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(growthInterval, 1);
        Enabled = enabled;
        Scale = enabled ? initScale : 1f;
        GrowthInterval = growthInterval;
    }

    /// <summary>
    /// The scaler a run's <c>[train]</c> settings ask for with a UNet in <paramref name="unetDType"/>: <c>loss_scaling = "auto"</c>
    /// enables it exactly for fp16 (bf16 has fp32's exponent range and needs none, as in accelerate).
    /// </summary>
    public static LossScaler For(Config.TrainConfig train, ScalarType unetDType) => new(
        train.LossScaling switch
        {
            "dynamic" => true,
            "off" => false,
            _ => unetDType == ScalarType.Float16,
        },
        (float)train.LossScaleInit, train.LossScaleGrowthInterval);

    /// <summary>Whether losses are scaled and steps with non-finite gradients skipped.</summary>
    public bool Enabled { get; }

    /// <summary>The current scale (1 when disabled).</summary>
    public float Scale { get; private set; }

    /// <summary>Consecutive good steps since the scale last changed (GradScaler's <c>_growth_tracker</c>).</summary>
    public int GrowthTracker { get; private set; }

    /// <summary>Good steps after which the scale grows.</summary>
    public int GrowthInterval { get; }

    /// <summary>The loss to differentiate: <paramref name="loss"/> × <see cref="Scale"/> (the loss itself when disabled).</summary>
    public Tensor Scaled(Tensor loss) => Enabled ? loss * Scale : loss;

    /// <summary>
    /// Divides every gradient of <paramref name="parameters"/> by the scale in place (GradScaler's <c>unscale_</c>,
    /// with its float32 reciprocal) and returns whether all of them are finite. Disabled: returns true, touches nothing.
    /// </summary>
    public bool Unscale(IReadOnlyList<Parameter> parameters)
    {
        if (!Enabled) return true;
        UnscaleGradients(parameters);
        using var allFinite = NonFiniteGuard.AllFinite(parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!));
        return allFinite is null || allFinite.item<bool>();
    }

    /// <summary>
    /// Divides every gradient of <paramref name="parameters"/> by the scale in place (GradScaler's <c>unscale_</c>,
    /// with its float32 reciprocal) without checking them; disabled, touches nothing. The training loop checks
    /// the gradients itself, fused with its other checks (<see cref="NonFiniteGuard"/>).
    /// </summary>
    internal void UnscaleGradients(IReadOnlyList<Parameter> parameters)
    {
        if (!Enabled) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        float inverse = (float)(1.0 / Scale);
        foreach (var p in parameters)
        {
            p.grad?.mul_(inverse);
        }
    }

    /// <summary>
    /// One optimizer step on the accumulated (scaled) gradients, in accelerate's order: unscale, clip the true
    /// gradients to <paramref name="maxGradNorm"/> (0: no clipping), step unless a gradient is infinite or NaN,
    /// zero the gradients, update the scale. Returns whether the optimizer stepped; a skipped step leaves the
    /// parameters and the optimizer state untouched.
    /// </summary>
    public bool Step(IReadOnlyList<Parameter> parameters, optim.Optimizer optimizer, double maxGradNorm)
    {
        bool finite = Unscale(parameters);
        if (finite)
        {
            if (maxGradNorm > 0) nn.utils.clip_grad_norm_(parameters, maxGradNorm);
            optimizer.step();
        }
        optimizer.zero_grad();
        Update(finite);
        return finite;
    }

    /// <summary>GradScaler's <c>update</c> after a step whose gradients were (not) all finite.</summary>
    public void Update(bool gradientsFinite)
    {
        if (!Enabled) return;
        if (!gradientsFinite)
        {
            Scale *= BackoffFactor;
            GrowthTracker = 0;
            return;
        }
        if (++GrowthTracker >= GrowthInterval)
        {
            float grown = Scale * GrowthFactor;
            if (float.IsFinite(grown)) Scale = grown;
            GrowthTracker = 0;
        }
    }

    /// <summary>Writes the scale and growth counter into the checkpoint state (nothing when disabled).</summary>
    internal void SaveTo(TrainingState state)
    {
        if (!Enabled) return;
        state.LossScale = Scale;
        state.LossScaleGrowthTracker = GrowthTracker;
    }

    /// <summary>
    /// Restores what <see cref="SaveTo"/> wrote. A checkpoint without a scale (made without loss scaling)
    /// leaves the initial scale; a malformed value is an error naming <paramref name="source"/> and the key.
    /// </summary>
    internal void LoadFrom(TrainingState state, string source)
    {
        if (!Enabled || state.LossScale is not { } scale) return;
        if (!(scale > 0) || !float.IsFinite(scale))
        {
            throw new InvalidDataException($"{source}: loss_scale must be a positive finite number, got {scale.ToString("R", CultureInfo.InvariantCulture)}");
        }
        if (state.LossScaleGrowthTracker < 0)
        {
            throw new InvalidDataException($"{source}: loss_scale_growth_tracker must be a non-negative integer, got {state.LossScaleGrowthTracker}");
        }
        Scale = scale;
        GrowthTracker = state.LossScaleGrowthTracker;
    }
}
