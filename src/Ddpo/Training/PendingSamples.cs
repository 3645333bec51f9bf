using Ddpo.Policies;
using Ddpo.Runs;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// An epoch's <see cref="EpochSamples"/> and images as a <see cref="PendingEpoch"/> (kept when the rewards failed, so
/// that <c>--resume</c> scores them): the samples' tensors under the pending epoch's keys.
/// </summary>
internal static class PendingSamples
{
    /// <summary>Keeps the samples and images of <paramref name="epoch"/>; returns the folder.</summary>
    public static string Save(RunFolder run, int epoch, EpochSamples samples, Tensor images)
    {
        // The conditioning under its parts' names (Stable Diffusion: prompt_embeds, negative_embeds).
        var tensors = new Dictionary<string, Tensor>(samples.Condition.Parts)
        {
            [PendingEpoch.Timesteps] = samples.Times,
            [PendingEpoch.Latents] = samples.Latents,
            [PendingEpoch.NextLatents] = samples.NextLatents,
            [PendingEpoch.LogProbs] = samples.LogProbs,
            [PendingEpoch.Images] = images,
        };
        if (samples.Unconditional is not null) foreach (var (name, t) in samples.Unconditional.AsNegative()) tensors[name] = t;
        return PendingEpoch.Save(run, epoch, tensors, samples.Prompts, samples.Metadata, samples.Groups);
    }

    /// <summary>
    /// The kept samples of <paramref name="epoch"/> on <paramref name="device"/> (rewards NaN, to be scored) and their
    /// images (on the CPU), or null when there are none; a malformed pending epoch is a <c>ModelLoadException</c>.
    /// </summary>
    public static (EpochSamples Samples, Tensor Images)? TryLoad(RunFolder run, int epoch, Device device)
    {
        if (PendingEpoch.TryLoad(run, epoch) is not { } pending) return null;
        var tensors = pending.Tensors;
        Tensor Take(string key) => tensors[key].to(device);
        var (condition, unconditional) = Conditioning.FromStored(tensors, device);
        var samples = new EpochSamples
        {
            Prompts = pending.Prompts,
            Metadata = pending.Metadata,
            Condition = condition,
            Unconditional = unconditional,
            Times = Take(PendingEpoch.Timesteps),
            Latents = Take(PendingEpoch.Latents),
            NextLatents = Take(PendingEpoch.NextLatents),
            LogProbs = Take(PendingEpoch.LogProbs),
            Rewards = Enumerable.Repeat(float.NaN, pending.Prompts.Length).ToArray(),
            Groups = pending.Groups,
        };
        return (samples, tensors[PendingEpoch.Images]);
    }

    /// <summary>Removes the pending epoch once it has been scored.</summary>
    public static void Delete(RunFolder run, int epoch) => PendingEpoch.Delete(run, epoch);
}
