using Ddpo.Config;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// DiffusionNFT's "old" policy (NVlabs/DiffusionNFT <c>scripts/train_nft_sd3.py</c> at 24af555: the "old" LoRA adapter):
/// a copy of the trainable weights, equal to them at the start, which samples the rollouts and gives v_old in the loss,
/// and after every epoch moves towards the trained weights, old = decay old + (1 - decay) theta, with decay from
/// <c>return_decay(global_step, decay_type)</c> (<see cref="NftConfig.DecayType"/>). Saved in checkpoints
/// (<see cref="CheckpointPrefix"/>).
/// </summary>
internal sealed class NftOldPolicy(IReadOnlyList<Parameter> parameters, int decayType) : IDisposable
{
    /// <summary>The key prefix of the old policy's tensors in a checkpoint (<c>nft_old.0000</c>, ...).</summary>
    public const string CheckpointPrefix = "nft_old";

    private readonly ParameterCopy _old = new(parameters);

    /// <summary>The old weights, in the parameters' order.</summary>
    public ParameterCopy Weights => _old;

    /// <summary>
    /// return_decay: 0 for the first <c>flat</c> optimizer steps, then min((step - flat) rate, cap), for the schedules
    /// of <see cref="NftConfig.DecaySchedules"/>.
    /// </summary>
    public static double Decay(long globalStep, int decayType)
    {
        var (flat, rate, cap) = NftConfig.DecaySchedules[decayType];
        return globalStep < flat ? 0.0 : Math.Min((globalStep - flat) * rate, cap);
    }

    /// <summary>The end-of-epoch update after <paramref name="globalStep"/> optimizer steps in all, in upstream's form tgt decay + src (1 - decay).</summary>
    public void Update(long globalStep)
    {
        double decay = Decay(globalStep, decayType);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        for (int i = 0; i < parameters.Count; i++)
        {
            var old = _old.Values[i];
            old.copy_(old * decay + parameters[i].detach() * (1.0 - decay));
        }
    }

    /// <summary>The old weights in the parameters until disposed (rollouts, v_old).</summary>
    public IDisposable Applied() => _old.Applied(parameters);

    /// <inheritdoc />
    public void Dispose() => _old.Dispose();
}
