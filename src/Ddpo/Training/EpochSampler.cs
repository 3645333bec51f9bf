using System.Diagnostics;
using Ddpo.Config;
using Ddpo.Policies;
using Ddpo.Prompts;
using Ddpo.Rewards;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// The sampling phase of a DDPO epoch: draws prompts, samples trajectories with the current policy
/// (no gradients), and scores each batch's images asynchronously while the next batch samples.
/// </summary>
/// <remarks>
/// With several processes (<paramref name="rank"/> of <paramref name="worldSize"/>) each samples its share of the
/// epoch: the prompts are drawn for the whole epoch and rank r takes its contiguous part, and batch b of rank r is
/// global batch r x <c>sample.num_batches_per_epoch</c> + b, whose noise comes from (seed, epoch, global batch). So a
/// sample's prompt and noise depend on its global index, not on the number of processes that made the epoch
/// (with the same per-process <c>sample.batch_size</c>).
/// </remarks>
internal sealed class EpochSampler(IDiffusionPolicy policy, DdpoConfig config, IPromptSource prompts,
    IRewardFunction reward, ITrainingObserver observer, int rank = 0, int worldSize = 1)
{
    /// <summary>Samples one epoch's trajectories and their rewards.</summary>
    public async Task<SampledEpoch> SampleAsync(int epoch, CancellationToken ct = default)
    {
        var s = config.Sample;
        var options = s.ToSamplingOptions(trainingEpoch: epoch);
        var rng = new Random(SeedMix.DeriveInt(config.Seed, epoch, "prompts"));
        int share = s.BatchSize * s.NumBatchesPerEpoch;
        var epochPrompts = DrawPrompts(rng, share * worldSize, s.GroupSize)[(rank * share)..((rank + 1) * share)];
        var timed = new TimedReward(reward);
        var rewards = new RewardPipeline(timed, maxConcurrency: 1);
        var batches = new List<(PromptSample[] Prompts, Conditioning Condition, Conditioning? Unconditional, Rollout Rollout)>();
        var images = new List<Tensor>();
        var tasks = new List<Task<RewardResult>>();
        var clock = Stopwatch.StartNew();
        // Each distinct prompt (and the negative prompt) is encoded once per epoch, not once per batch.
        using var conditionings = new ConditioningCache(policy);
        observer.PhaseStarted(epoch, "sampling", s.NumBatchesPerEpoch * s.NumSteps);
        try
        {
            for (int b = 0; b < s.NumBatchesPerEpoch; b++)
            {
                ct.ThrowIfCancellationRequested();
                var chosen = epochPrompts[(b * s.BatchSize)..((b + 1) * s.BatchSize)];
                var texts = chosen.Select(p => p.Prompt).ToArray();
                var generator = new Generator(SeedMix.Derive(config.Seed, epoch, "noise", rank * s.NumBatchesPerEpoch + b));
                var condition = conditionings.Get(texts);
                Conditioning? unconditional = null;
                if (policy.NeedsUnconditional(options))
                {
                    using var one = conditionings.Get([""]);
                    unconditional = one.Expand(texts.Length);
                }
                using var groupNoise = s.InitSameNoise ? GroupNoise(epoch, b, options) : null;
                var rollout = policy.Sample(condition, unconditional, options, generator, new Progress(observer, "sampling", b * s.NumSteps), groupNoise);
                var batchImages = policy.Decode(rollout.Final);
                batches.Add((chosen, condition, unconditional, rollout));
                images.Add(batchImages);
                // Submit copies the images; ours are kept until the rewards are in, to be saved if they fail.
                tasks.Add(rewards.Submit(new RewardBatch(batchImages, texts, chosen.Select(p => p.Metadata).ToArray()), ct));
            }
            double samplingSeconds = clock.Elapsed.TotalSeconds;
            var scored = await AwaitRewardsAsync(epoch, tasks,
                () => Collate(batches, batches.Select(b => Unscored(b.Prompts.Length)).ToArray()), () => cat(images, 0)).ConfigureAwait(false);
            return new SampledEpoch(Collate(batches, scored), samplingSeconds, timed.Seconds, conditionings.EncodedCount);
        }
        finally
        {
            foreach (var b in batches)
            {
                b.Condition.Dispose();
                b.Unconditional?.Dispose();
                b.Rollout.Dispose();
            }
            foreach (var t in images) t.Dispose();
        }
    }

    /// <summary>
    /// The epoch's prompts in sampling order: <paramref name="count"/> / <paramref name="groupSize"/> draws, each
    /// repeated <paramref name="groupSize"/> times in a row (groups may span two batches). With a group size of 1
    /// the draws are the ones ddpo-pytorch's per-sample prompt_fn calls make, in the same order.
    /// </summary>
    private PromptSample[] DrawPrompts(Random rng, int count, int groupSize) =>
        Enumerable.Range(0, count / groupSize).Select(_ => prompts.Next(rng))
            .SelectMany(p => Enumerable.Repeat(p, groupSize)).ToArray();

    /// <summary>
    /// Scores the images of trajectories sampled earlier (kept when their rewards failed), in batches
    /// of <c>sample.batch_size</c>; returns the samples with their rewards. Takes ownership of <paramref name="samples"/>.
    /// </summary>
    public async Task<SampledEpoch> ScoreAsync(int epoch, EpochSamples samples, Tensor images, CancellationToken ct = default)
    {
        var timed = new TimedReward(reward);
        var rewards = new RewardPipeline(timed, maxConcurrency: 1);
        int size = config.Sample.BatchSize;
        var tasks = new List<Task<RewardResult>>();
        for (int start = 0; start < samples.Count; start += size)
        {
            int end = Math.Min(start + size, samples.Count);
            using var slice = images[start..end];
            tasks.Add(rewards.Submit(new RewardBatch(slice, samples.Prompts[start..end], samples.Metadata[start..end]), ct));
        }
        var scored = await AwaitRewardsAsync(epoch, tasks, () => samples, images.alias).ConfigureAwait(false);
        return new SampledEpoch(samples.WithRewards(scored.SelectMany(r => r.Rewards).ToArray(), MergeDetails(scored)), 0, timed.Seconds, 0);
    }

    /// <summary>
    /// The rewards of the submitted batches in order, with the "rewards" phase's progress. When one fails, the
    /// epoch's samples (<paramref name="unscored"/>) and images (<paramref name="allImages"/>) go into the
    /// <see cref="RewardFailedException"/>, to be kept for --resume.
    /// </summary>
    private async Task<RewardResult[]> AwaitRewardsAsync(int epoch, List<Task<RewardResult>> tasks, Func<EpochSamples> unscored, Func<Tensor> allImages)
    {
        observer.PhaseStarted(epoch, "rewards", tasks.Count);
        var scored = new RewardResult[tasks.Count];
        for (int i = 0; i < tasks.Count; i++)
        {
            try
            {
                scored[i] = await tasks[i].ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                throw new RewardFailedException(epoch, unscored(), allImages(), e);
            }
            observer.PhaseProgress("rewards", i + 1);
        }
        return scored;
    }

    private static RewardResult Unscored(int count) => new(Enumerable.Repeat(float.NaN, count).ToArray());

    private static Dictionary<string, float[]> MergeDetails(IReadOnlyList<RewardResult> scored)
    {
        var details = new Dictionary<string, float[]>();
        foreach (var key in scored.Where(r => r.Details is not null).SelectMany(r => r.Details!.Keys).Distinct())
        {
            details[key] = scored.SelectMany(r => r.Details is not null && r.Details.TryGetValue(key, out var v) ? v : Enumerable.Repeat(float.NaN, r.Rewards.Length)).ToArray();
        }
        return details;
    }

    private EpochSamples Collate(List<(PromptSample[] Prompts, Conditioning Condition, Conditioning? Unconditional, Rollout Rollout)> batches, RewardResult[] scored)
    {
        using var scope = NewDisposeScope();
        var latents = cat(batches.Select(b => b.Rollout.Latents!).ToList(), 0);
        long steps = latents.shape[1] - 1;
        long n = latents.shape[0];
        var times = batches[0].Rollout.Times.to(latents.device).unsqueeze(0).expand(n, steps).contiguous();
        return new EpochSamples
        {
            Prompts = batches.SelectMany(b => b.Prompts.Select(p => p.Prompt)).ToArray(),
            Metadata = batches.SelectMany(b => b.Prompts.Select(p => p.Metadata)).ToArray(),
            Condition = Conditioning.Concat(batches.Select(b => b.Condition).ToList()).MoveToOuterDisposeScope(),
            Unconditional = batches[0].Unconditional is null ? null : Conditioning.Concat(batches.Select(b => b.Unconditional!).ToList()).MoveToOuterDisposeScope(),
            Times = times.MoveToOuterDisposeScope(),
            Latents = latents[.., ..(int)steps].contiguous().MoveToOuterDisposeScope(),
            NextLatents = latents[.., 1..].contiguous().MoveToOuterDisposeScope(),
            LogProbs = cat(batches.Select(b => b.Rollout.LogProbs!).ToList(), 0).MoveToOuterDisposeScope(),
            Rewards = scored.SelectMany(r => r.Rewards).ToArray(),
            RewardDetails = MergeDetails(scored),
            // Ids number the groups by global sample index, so that they stay unique in the epoch gathered from several
            // processes, and a group whose samples two processes made stays one group.
            Groups = GlobalGroups((int)n),
        };
    }

    /// <summary>
    /// <c>sample.init_same_noise</c>: x_T of batch <paramref name="batch"/>'s rows, each its group's, drawn from a generator
    /// of the seed, the epoch and the (global) group id: the same for a group wherever its samples are made.
    /// </summary>
    private Tensor GroupNoise(int epoch, int batch, Policies.SamplingOptions options)
    {
        var groups = GlobalGroups(config.Sample.BatchSize * (batch + 1))[(batch * config.Sample.BatchSize)..];
        using var scope = NewDisposeScope();
        var rows = groups.Select(g => policy.InitialNoise(1, options, new Generator(SeedMix.Derive(config.Seed, epoch, "group-noise", checked((int)g))))).ToList();
        return cat(rows, 0).MoveToOuterDisposeScope();
    }

    /// <summary>The group of each of this process's <paramref name="count"/> samples: global sample index / group size.</summary>
    private long[] GlobalGroups(int count)
    {
        long first = (long)rank * config.Sample.BatchSize * config.Sample.NumBatchesPerEpoch;
        return Enumerable.Range(0, count).Select(i => (first + i) / config.Sample.GroupSize).ToArray();
    }

    private sealed class Progress(ITrainingObserver observer, string phase, int offset) : IProgress<int>
    {
        public void Report(int value) => observer.PhaseProgress(phase, offset + value);
    }

    /// <summary>Wraps a reward to add up the time it spends.</summary>
    private sealed class TimedReward(IRewardFunction inner) : IRewardFunction
    {
        private long _ticks;
        public string Name => inner.Name;
        public double Seconds => TimeSpan.FromTicks(Interlocked.Read(ref _ticks)).TotalSeconds;

        public async Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
        {
            var clock = Stopwatch.StartNew();
            try { return await inner.ScoreAsync(batch, ct).ConfigureAwait(false); }
            finally { Interlocked.Add(ref _ticks, clock.Elapsed.Ticks); }
        }
    }
}
