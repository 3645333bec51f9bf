using Ddpo.Policies;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// One epoch's trajectories, collated over sampling batches: for every sample and denoising step the
/// state x_t, the action x_{t-1}, the step's time and the log-probability under the sampling policy,
/// plus the prompt, its conditioning and the reward. Tensors live on the training device.
/// </summary>
internal sealed class EpochSamples : IDisposable
{
    /// <summary>Prompt of each sample.</summary>
    public required string[] Prompts { get; init; }
    /// <summary>Prompt metadata of each sample.</summary>
    public required IReadOnlyDictionary<string, string>[] Metadata { get; init; }
    /// <summary>The prompts' conditioning (N rows).</summary>
    public required Conditioning Condition { get; init; }
    /// <summary>The unconditional (negative-prompt) conditioning (N rows), or null when sampling was not guided with one.</summary>
    public Conditioning? Unconditional { get; init; }
    /// <summary>[N, T] the time of each step (the policy's schedule values; DDIM: int64 timesteps).</summary>
    public required Tensor Times { get; init; }
    /// <summary>[N, T, C, H, W] x_t before each step.</summary>
    public required Tensor Latents { get; init; }
    /// <summary>[N, T, C, H, W] x_{t-1} after each step.</summary>
    public required Tensor NextLatents { get; init; }
    /// <summary>[N, T] float32 log-probabilities at sampling time.</summary>
    public required Tensor LogProbs { get; init; }
    /// <summary>Reward of each sample (may hold NaN / infinity from a broken reward).</summary>
    public required float[] Rewards { get; init; }
    /// <summary>Per-component reward values, when the reward reports them.</summary>
    public IReadOnlyDictionary<string, float[]> RewardDetails { get; init; } = new Dictionary<string, float[]>();
    /// <summary>
    /// The group of each sample (the images of one drawn prompt, <c>sample.group_size</c> of them; ids unique within
    /// the epoch), or null when unknown. GRPO's advantages are taken within these groups.
    /// </summary>
    public long[]? Groups { get; init; }

    /// <summary>Number of samples.</summary>
    public int Count => Prompts.Length;

    /// <summary>Number of denoising steps per sample.</summary>
    public int Steps => (int)Times.shape[1];

    /// <summary>A new set holding the samples at <paramref name="indices"/> in that order (tensors copied).</summary>
    public EpochSamples Select(long[] indices)
    {
        using var idx = tensor(indices, dtype: ScalarType.Int64, device: Latents.device);
        return new EpochSamples
        {
            Prompts = indices.Select(i => Prompts[i]).ToArray(),
            Metadata = indices.Select(i => Metadata[i]).ToArray(),
            Condition = Condition.Select(idx),
            Unconditional = Unconditional?.Select(idx),
            Times = Times.index_select(0, idx),
            Latents = Latents.index_select(0, idx),
            NextLatents = NextLatents.index_select(0, idx),
            LogProbs = LogProbs.index_select(0, idx),
            Rewards = indices.Select(i => Rewards[i]).ToArray(),
            RewardDetails = RewardDetails.ToDictionary(kv => kv.Key, kv => indices.Select(i => kv.Value[i]).ToArray()),
            Groups = Groups is null ? null : indices.Select(i => Groups[i]).ToArray(),
        };
    }

    /// <summary>
    /// Reorders the steps of every sample independently: <paramref name="permutations"/> is [N, K]
    /// int64 (row i the step indices to keep, in their new order: a permutation of 0..K-1, K &lt;= T, keeps the first
    /// K steps as ddpo-pytorch does each inner epoch; with an SDE window, a permutation of the window's steps).
    /// </summary>
    public EpochSamples PermuteSteps(Tensor permutations)
    {
        using var scope = NewDisposeScope();
        var perms = permutations.to(Latents.device);
        Tensor Gather(Tensor t)
        {
            var index = perms;
            for (int d = 2; d < t.dim(); d++) index = index.unsqueeze(-1);
            // perms may cover only the leading steps (the stochastic ones), so the result has perms' width.
            var shape = t.shape.ToArray();
            shape[1] = perms.shape[1];
            return t.gather(1, index.expand(shape)).MoveToOuterDisposeScope();
        }
        return new EpochSamples
        {
            Prompts = Prompts,
            Metadata = Metadata,
            Condition = Condition.Alias().MoveToOuterDisposeScope(),
            Unconditional = Unconditional?.Alias().MoveToOuterDisposeScope(),
            Times = Gather(Times),
            Latents = Gather(Latents),
            NextLatents = Gather(NextLatents),
            LogProbs = Gather(LogProbs),
            Rewards = Rewards,
            RewardDetails = RewardDetails,
            Groups = Groups,
        };
    }

    /// <summary>The same samples (the same tensors: ownership moves to the result) with rewards filled in.</summary>
    public EpochSamples WithRewards(float[] rewards, IReadOnlyDictionary<string, float[]> details)
    {
        if (rewards.Length != Count) throw new ArgumentException($"{rewards.Length} rewards for {Count} samples");
        return new EpochSamples
        {
            Prompts = Prompts, Metadata = Metadata, Condition = Condition, Unconditional = Unconditional,
            Times = Times, Latents = Latents, NextLatents = NextLatents, LogProbs = LogProbs,
            Rewards = rewards, RewardDetails = details, Groups = Groups,
        };
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Condition.Dispose();
        Unconditional?.Dispose();
        Times.Dispose();
        Latents.Dispose();
        NextLatents.Dispose();
        LogProbs.Dispose();
    }
}
