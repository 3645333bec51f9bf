using static TorchSharp.torch;

namespace Ddpo.Rewards;

/// <summary>
/// A batch to score: <paramref name="Images"/> is [B, 3, H, W] float in [0, 1] on the CPU, with one prompt
/// and one metadata dictionary per image.
/// </summary>
public sealed record RewardBatch(
    Tensor Images,
    IReadOnlyList<string> Prompts,
    IReadOnlyList<IReadOnlyDictionary<string, string>> Metadata)
{
    /// <summary>The number of images.</summary>
    public int Count => (int)Images.shape[0];

    /// <summary>Checks the shape and that prompts and metadata match the image count.</summary>
    public void Validate()
    {
        if (Images.dim() != 4 || Images.shape[1] != 3)
        {
            throw new ArgumentException($"RewardBatch.Images: expected [B, 3, H, W], got [{string.Join(", ", Images.shape)}]");
        }
        if (Prompts.Count != Count || Metadata.Count != Count)
        {
            throw new ArgumentException($"RewardBatch: {Count} images but {Prompts.Count} prompts and {Metadata.Count} metadata entries");
        }
    }
}

/// <summary>
/// Rewards (one per image) and optional per-image details (e.g. each component of a weighted sum).
/// </summary>
public sealed record RewardResult(float[] Rewards, IReadOnlyDictionary<string, float[]>? Details = null);

/// <summary>A reward function over generated images.</summary>
public interface IRewardFunction
{
    /// <summary>The name it is registered and logged under.</summary>
    string Name { get; }

    /// <summary>Scores a batch; must not modify or dispose <see cref="RewardBatch.Images"/>.</summary>
    Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct);
}
