using Ddpo.Policies;
using Ddpo.Prompts;
using Ddpo.Rewards;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Evaluation;

/// <summary>Mean reward of one model on one prompt set.</summary>
/// <param name="Mean">Mean over prompts x seeds (finite values only).</param>
/// <param name="Sem">Standard error of the mean (<see cref="StandardError.OfMean"/>).</param>
/// <param name="Count">Number of finite rewards.</param>
internal sealed record RewardSummary(double Mean, double Sem, int Count)
{
    /// <summary>Summarises rewards, ignoring NaN and infinities.</summary>
    public static RewardSummary Of(IEnumerable<float> rewards)
    {
        var r = rewards.Where(float.IsFinite).Select(x => (double)x).ToArray();
        if (r.Length == 0) return new RewardSummary(double.NaN, double.NaN, 0);
        return new RewardSummary(r.Average(), StandardError.OfMean(r), r.Length);
    }
}

/// <summary>Base vs fine-tuned reward on one prompt set.</summary>
/// <param name="PromptSet">The set's name (e.g. <c>train</c>, <c>held-out</c>).</param>
/// <param name="Reward">The reward's name.</param>
/// <param name="Base">The base model.</param>
/// <param name="FineTuned">The fine-tuned model.</param>
/// <param name="ChangeSem">
/// Standard error of the change, paired: both models sample the same prompts from the same initial noise, so the
/// change is the mean of per-image differences and its standard error is theirs (<see cref="StandardError.OfMean"/>
/// over the images both models scored). What a prompt adds to both images (a tiger is harder to compress than a
/// frog) cancels, which the unpaired sqrt(base sem^2 + fine-tuned sem^2) counts as noise.
/// </param>
internal sealed record EvaluationRow(string PromptSet, string Reward, RewardSummary Base, RewardSummary FineTuned, double ChangeSem)
{
    /// <summary>Fine-tuned minus base mean.</summary>
    public double Change => FineTuned.Mean - Base.Mean;

    /// <summary>The change in standard errors (<see cref="Change"/> / <see cref="ChangeSem"/>).</summary>
    public double ChangeInSems => Change / ChangeSem;

    /// <summary>
    /// Summarises the rewards of the same images (prompt and seed) under the base and the fine-tuned model;
    /// non-finite rewards are left out of their model's mean and, pairwise, out of the change's standard error.
    /// </summary>
    public static EvaluationRow Of(string promptSet, string reward, IReadOnlyList<float> baseRewards, IReadOnlyList<float> fineTunedRewards)
    {
        if (baseRewards.Count != fineTunedRewards.Count)
        {
            throw new ArgumentException($"paired rewards: {baseRewards.Count} base vs {fineTunedRewards.Count} fine-tuned images");
        }
        var differences = baseRewards.Zip(fineTunedRewards)
            .Where(p => float.IsFinite(p.First) && float.IsFinite(p.Second))
            .Select(p => (double)p.Second - p.First).ToArray();
        return new EvaluationRow(promptSet, reward, RewardSummary.Of(baseRewards), RewardSummary.Of(fineTunedRewards),
            StandardError.OfMean(differences));
    }
}

/// <summary>
/// Samples the same prompts with the same seeds before and after applying fine-tuned weights, and
/// scores both with each reward: the paper's generalisation check on unseen prompts.
/// </summary>
internal static class PolicyEvaluator
{
    /// <summary>
    /// Samples <paramref name="prompts"/> x <paramref name="seedsPerPrompt"/> images (seeded by position) and returns
    /// them [N, 3, H, W] with the prompt (and its metadata) of each.
    /// </summary>
    public static (Tensor Images, PromptSample[] Prompts) SampleFixed(IDiffusionPolicy policy, IReadOnlyList<PromptSample> prompts,
        int seedsPerPrompt, SamplingOptions options, long seed, int batchSize = 16)
    {
        var all = prompts.SelectMany(p => Enumerable.Repeat(p, seedsPerPrompt)).ToArray();
        var images = new List<Tensor>();
        for (int start = 0; start < all.Length; start += batchSize)
        {
            var chunk = all[start..Math.Min(start + batchSize, all.Length)].Select(p => p.Prompt).ToArray();
            images.Add(PolicySampling.Images(policy, chunk, options, new Generator((ulong)(seed + start))));
        }
        var cat = torch.cat(images, 0);
        foreach (var t in images) t.Dispose();
        return (cat, all);
    }

    /// <summary>
    /// Scores images with a reward in batches, passing each prompt's metadata as training does; NaN where the
    /// reward gave none.
    /// </summary>
    public static float[] Score(IRewardFunction reward, Tensor images, IReadOnlyList<PromptSample> prompts, int batchSize = 16) =>
        ScoreWithDetails(reward, images, prompts, batchSize).Rewards;

    /// <summary>
    /// <see cref="Score"/> with the reward's details, batches concatenated (a detail key a batch lacks is NaN there).
    /// </summary>
    public static RewardResult ScoreWithDetails(IRewardFunction reward, Tensor images, IReadOnlyList<PromptSample> prompts, int batchSize = 16)
    {
        var scores = new List<float>();
        var details = new Dictionary<string, float[]>(StringComparer.Ordinal);
        for (int start = 0; start < prompts.Count; start += batchSize)
        {
            int end = Math.Min(start + batchSize, prompts.Count);
            using var slice = images[start..end];
            var chunk = prompts.Skip(start).Take(end - start).ToArray();
            var batch = new RewardBatch(slice, chunk.Select(p => p.Prompt).ToArray(), chunk.Select(p => p.Metadata).ToArray());
            var result = reward.ScoreAsync(batch, CancellationToken.None).GetAwaiter().GetResult();
            scores.AddRange(result.Rewards);
            foreach (var (key, values) in result.Details ?? new Dictionary<string, float[]>())
            {
                if (!details.TryGetValue(key, out var all))
                {
                    details[key] = all = Enumerable.Repeat(float.NaN, prompts.Count).ToArray();
                }
                Array.Copy(values, 0, all, start, Math.Min(values.Length, end - start));
            }
        }
        return new RewardResult(scores.ToArray(), details);
    }

    /// <summary>
    /// Samples each prompt set (<see cref="SampleFixed"/>, the same seeds for every model sampled from
    /// <paramref name="seed"/>) and scores the images with each reward: (set, reward) -> a reward per image, in the
    /// order of the set's prompts x seeds. <paramref name="label"/> names the model in the phase descriptions.
    /// </summary>
    public static Dictionary<(string Set, string Reward), float[]> ScoreSets(IDiffusionPolicy policy,
        IReadOnlyList<(string Name, IReadOnlyList<PromptSample> Prompts)> sets, IReadOnlyList<EvaluationScorer> scorers,
        int seedsPerPrompt, SamplingOptions options, long seed, string label, IEvaluationProgress? progress = null)
    {
        var result = new Dictionary<(string, string), float[]>();
        foreach (var (set, prompts) in sets)
        {
            (Tensor, PromptSample[]) Sample() => SampleFixed(policy, prompts, seedsPerPrompt, options, seed);
            var description = $"{label}: sampling '{set}' ({prompts.Count} prompts x {seedsPerPrompt})";
            var (images, all) = progress is null ? Sample() : progress.Run(description, Sample);
            using (images)
            {
                foreach (var scorer in scorers)
                {
                    var scored = ScoreWithDetails(scorer.Reward, images, all);
                    result[(set, scorer.Name)] = scored.Rewards;
                    foreach (var (name, key) in scorer.Components)
                    {
                        result[(set, name)] = scored.Details is { } d && d.TryGetValue(key, out var v) ? v : Enumerable.Repeat(float.NaN, all.Length).ToArray();
                    }
                }
            }
        }
        return result;
    }
}
