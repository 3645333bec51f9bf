using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Imaging;
using Ddpo.Prompts;
using Ddpo.Rewards;
using static TorchSharp.torch;

namespace Ddpo;

/// <summary>The score of one image file: the reward and each detail (e.g. each component of a weighted reward).</summary>
/// <param name="File">The image file.</param>
/// <param name="Prompt">The prompt it was scored against.</param>
/// <param name="Reward">The reward (NaN: the reward could not score it; the log says why).</param>
/// <param name="Details">The reward's details for this image, by name.</param>
internal sealed record ImageFileScore(string File, string Prompt, float Reward, IReadOnlyDictionary<string, float> Details);

/// <summary>
/// Scores image files with any registered reward (<c>ddpo score</c>): the reward is built from a config as training
/// builds it (<c>weighted</c> with the config's <c>rewards</c> table included), its prompt requirements are checked, and
/// images are scored in order, those of one size in one batch.
/// </summary>
internal static class RewardScoring
{
    /// <summary>
    /// Scores <paramref name="files"/> (PNG or JPEG) with the reward <paramref name="rewardName"/> of
    /// <paramref name="config"/>. <paramref name="prompts"/> and <paramref name="metadata"/> hold one entry per image,
    /// or one for all (metadata may be empty: none).
    /// </summary>
    public static IReadOnlyList<ImageFileScore> ScoreFiles(DdpoConfig config, string rewardName, IReadOnlyList<string> files,
        IReadOnlyList<string> prompts, IReadOnlyList<IReadOnlyDictionary<string, string>> metadata, Action<string>? log, CancellationToken ct)
    {
        if (files.Count == 0) throw new ConfigException("score: give at least one image (--image FILE)");
        var p = PerImage(prompts, files.Count, "prompt", "--prompt TEXT");
        var m = metadata.Count == 0 ? files.Select(_ => PromptSample.NoMetadata).ToArray() : PerImage(metadata, files.Count, "metadata", "--metadata JSON");
        var samples = p.Select((prompt, i) => new PromptSample(prompt, m[i])).ToArray();
        foreach (var file in files)
        {
            if (!File.Exists(file)) throw new FileNotFoundException($"score: image '{file}' not found", file);
        }

        var reward = RewardFactory.CreateRegistry(config, log).Create(rewardName, config.Rewards);
        try
        {
            RewardPromptChecks.Check(reward, samples, "the prompts given");
            var scores = new ImageFileScore[files.Count];
            var images = files.Select(ImageTensor.Load).ToArray();
            try
            {
                // One batch per image size, in order of first appearance.
                foreach (var group in Enumerable.Range(0, files.Count).GroupBy(i => (images[i].shape[1], images[i].shape[2])))
                {
                    var index = group.ToArray();
                    using var batch = stack(index.Select(i => images[i]).ToArray());
                    var result = reward.ScoreAsync(new RewardBatch(batch, index.Select(i => p[i]).ToArray(), index.Select(i => m[i]).ToArray()), ct)
                        .GetAwaiter().GetResult();
                    if (result.Rewards.Length != index.Length)
                    {
                        throw new InvalidOperationException($"reward '{reward.Name}' returned {result.Rewards.Length} values for {index.Length} images");
                    }
                    for (int k = 0; k < index.Length; k++)
                    {
                        var details = (result.Details ?? new Dictionary<string, float[]>()).ToDictionary(d => d.Key, d => d.Value[k]);
                        scores[index[k]] = new ImageFileScore(files[index[k]], p[index[k]], result.Rewards[k], details);
                    }
                }
            }
            finally
            {
                foreach (var image in images) image.Dispose();
            }
            return scores;
        }
        finally
        {
            (reward as IDisposable)?.Dispose();
        }
    }

    private static T[] PerImage<T>(IReadOnlyList<T> values, int images, string what, string option)
    {
        if (values.Count == images) return values.ToArray();
        if (values.Count == 1) return Enumerable.Repeat(values[0], images).ToArray();
        throw new ConfigException($"score: {values.Count} {what}s for {images} images (give one {option} per image, or one for all)");
    }
}
