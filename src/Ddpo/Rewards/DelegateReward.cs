using static TorchSharp.torch;

namespace Ddpo.Rewards;

/// <summary>
/// A reward written as a C# delegate, as ddpo-pytorch's rewards are plain closures: over a whole batch (images
/// [B, 3, H, W] in [0, 1] on the CPU, prompts, metadata), sync or async, or over one image at a time
/// (<see cref="PerImage"/>). It must return one finite or NaN reward per image (NaN drops the sample from the update).
/// </summary>
public sealed class DelegateReward : IRewardFunction
{
    private readonly Func<RewardBatch, CancellationToken, Task<float[]>> _score;

    /// <summary>An async reward over a batch.</summary>
    public DelegateReward(string name, Func<RewardBatch, CancellationToken, Task<float[]>> score)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("a reward needs a name (it is logged and recorded in config.toml)", nameof(name));
        Name = name;
        _score = score ?? throw new ArgumentNullException(nameof(score));
    }

    /// <summary>An async reward over a batch, without cancellation.</summary>
    public DelegateReward(string name, Func<RewardBatch, Task<float[]>> score)
        : this(name, (batch, _) => (score ?? throw new ArgumentNullException(nameof(score)))(batch))
    {
    }

    /// <summary>A synchronous reward over a batch.</summary>
    public DelegateReward(string name, Func<RewardBatch, float[]> score)
        : this(name, (batch, _) => Task.FromResult((score ?? throw new ArgumentNullException(nameof(score)))(batch)))
    {
    }

    /// <summary>
    /// A reward of one image at a time: <paramref name="score"/> gets the image [3, H, W] in [0, 1], its prompt and
    /// its metadata. Tensors it makes are freed after each image.
    /// </summary>
    public static DelegateReward PerImage(string name, Func<Tensor, string, IReadOnlyDictionary<string, string>, float> score)
    {
        ArgumentNullException.ThrowIfNull(score);
        return new DelegateReward(name, batch =>
        {
            var rewards = new float[batch.Count];
            for (int i = 0; i < rewards.Length; i++)
            {
                using var scope = NewDisposeScope();
                rewards[i] = score(batch.Images[i], batch.Prompts[i], batch.Metadata[i]);
            }
            return rewards;
        });
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public async Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(batch);
        batch.Validate();
        var rewards = await _score(batch, ct).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"reward '{Name}' returned no rewards (null) for {batch.Count} images");
        if (rewards.Length != batch.Count)
        {
            throw new InvalidOperationException($"reward '{Name}' returned {rewards.Length} rewards for {batch.Count} images (expected one per image)");
        }
        return new RewardResult(rewards);
    }
}
