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
        var tensors = new Dictionary<string, Tensor>
        {
            [PendingEpoch.PromptEmbeds] = samples.PromptEmbeds,
            [PendingEpoch.Timesteps] = samples.Timesteps,
            [PendingEpoch.Latents] = samples.Latents,
            [PendingEpoch.NextLatents] = samples.NextLatents,
            [PendingEpoch.LogProbs] = samples.LogProbs,
            [PendingEpoch.Images] = images,
        };
        if (samples.NegativeEmbeds is not null) tensors[PendingEpoch.NegativeEmbeds] = samples.NegativeEmbeds;
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
        var samples = new EpochSamples
        {
            Prompts = pending.Prompts,
            Metadata = pending.Metadata,
            PromptEmbeds = Take(PendingEpoch.PromptEmbeds),
            NegativeEmbeds = tensors.ContainsKey(PendingEpoch.NegativeEmbeds) ? Take(PendingEpoch.NegativeEmbeds) : null,
            Timesteps = Take(PendingEpoch.Timesteps),
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
