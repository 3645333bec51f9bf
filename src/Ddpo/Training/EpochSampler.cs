using System.Diagnostics;
using Ddpo.Config;
using Ddpo.Pipelines;
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
internal sealed class EpochSampler(TextToImagePipeline pipeline, DdpoConfig config, IPromptSource prompts,
    IRewardFunction reward, ITrainingObserver observer, int rank = 0, int worldSize = 1)
{
    /// <summary>Seconds spent sampling in the last call.</summary>
    public double SamplingSeconds { get; private set; }

    /// <summary>Seconds spent computing rewards in the last call (summed over batches, may overlap sampling).</summary>
    public double RewardSeconds { get; private set; }

    /// <summary>Prompts the text encoder encoded in the last call (distinct prompts, the negative prompt included).</summary>
    public int PromptsEncoded { get; private set; }

    /// <summary>Samples one epoch's trajectories and their rewards.</summary>
    public async Task<EpochSamples> SampleAsync(int epoch, CancellationToken ct = default)
    {
        var s = config.Sample;
        var options = new SamplingOptions { NumSteps = s.NumSteps, Eta = s.Eta, GuidanceScale = s.GuidanceScale, FinalStep = s.FinalStep, RecordTrajectory = true,
            SdeWindow = SdeWindow.At(s, epoch) };
        var rng = new Random(SeedMix.DeriveInt(config.Seed, epoch, "prompts"));
        int share = s.BatchSize * s.NumBatchesPerEpoch;
        var epochPrompts = DrawPrompts(rng, share * worldSize, s.GroupSize)[(rank * share)..((rank + 1) * share)];
        var rewards = new RewardPipeline(new TimedReward(reward), maxConcurrency: 1);
        var batches = new List<(PromptSample[] Prompts, Trajectory Trajectory)>();
        var images = new List<Tensor>();
        var tasks = new List<Task<RewardResult>>();
        var clock = Stopwatch.StartNew();
        // Each distinct prompt (and the negative prompt) is encoded once per epoch, not once per batch.
        using var embeddings = new PromptEmbeddingCache(pipeline);
        observer.PhaseStarted(epoch, "sampling", s.NumBatchesPerEpoch * s.NumSteps);
        try
        {
            for (int b = 0; b < s.NumBatchesPerEpoch; b++)
            {
                ct.ThrowIfCancellationRequested();
                var chosen = epochPrompts[(b * s.BatchSize)..((b + 1) * s.BatchSize)];
                var generator = new Generator(SeedMix.Derive(config.Seed, epoch, "noise", rank * s.NumBatchesPerEpoch + b));
                int offset = b * s.NumSteps;
                var result = pipeline.Sample(chosen.Select(p => p.Prompt).ToArray(), options, generator, "",
                    new Progress(observer, "sampling", offset), embeddings);
                batches.Add((chosen, result.Trajectory!));
                images.Add(result.Images);
                // Submit copies the images; ours are kept until the rewards are in, to be saved if they fail.
                tasks.Add(rewards.Submit(new RewardBatch(result.Images, chosen.Select(p => p.Prompt).ToArray(),
                    chosen.Select(p => p.Metadata).ToArray()), ct));
            }
            SamplingSeconds = clock.Elapsed.TotalSeconds;
            PromptsEncoded = embeddings.EncodedCount;
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
                    var unscored = batches.Select(b => new RewardResult(Enumerable.Repeat(float.NaN, b.Prompts.Length).ToArray())).ToArray();
                    throw new RewardFailedException(epoch, Collate(batches, unscored), cat(images, 0), e);
                }
                observer.PhaseProgress("rewards", i + 1);
            }
            RewardSeconds = ((TimedReward)rewards.Reward).Seconds;
            return Collate(batches, scored);
        }
        finally
        {
            foreach (var (_, t) in batches) t.Dispose();
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
    public async Task<EpochSamples> ScoreAsync(int epoch, EpochSamples samples, Tensor images, CancellationToken ct = default)
    {
        var rewards = new RewardPipeline(new TimedReward(reward), maxConcurrency: 1);
        int size = config.Sample.BatchSize;
        var tasks = new List<Task<RewardResult>>();
        for (int start = 0; start < samples.Count; start += size)
        {
            int end = Math.Min(start + size, samples.Count);
            using var slice = images[start..end];
            tasks.Add(rewards.Submit(new RewardBatch(slice, samples.Prompts[start..end], samples.Metadata[start..end]), ct));
        }
        observer.PhaseStarted(epoch, "rewards", tasks.Count);
        var scored = new List<RewardResult>();
        foreach (var task in tasks)
        {
            try
            {
                scored.Add(await task.ConfigureAwait(false));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                throw new RewardFailedException(epoch, samples, images.alias(), e);
            }
            observer.PhaseProgress("rewards", scored.Count);
        }
        SamplingSeconds = 0;
        RewardSeconds = ((TimedReward)rewards.Reward).Seconds;
        return samples.WithRewards(scored.SelectMany(r => r.Rewards).ToArray(), MergeDetails(scored));
    }

    private static Dictionary<string, float[]> MergeDetails(IReadOnlyList<RewardResult> scored)
    {
        var details = new Dictionary<string, float[]>();
        foreach (var key in scored.Where(r => r.Details is not null).SelectMany(r => r.Details!.Keys).Distinct())
        {
            details[key] = scored.SelectMany(r => r.Details is not null && r.Details.TryGetValue(key, out var v) ? v : Enumerable.Repeat(float.NaN, r.Rewards.Length)).ToArray();
        }
        return details;
    }

    private EpochSamples Collate(List<(PromptSample[] Prompts, Trajectory Trajectory)> batches, RewardResult[] scored)
    {
        using var scope = NewDisposeScope();
        var all = batches.Select(b => b.Trajectory).ToList();
        var latents = cat(all.Select(t => t.Latents).ToList(), 0);
        long steps = latents.shape[1] - 1;
        long n = latents.shape[0];
        var timesteps = tensor(all[0].Timesteps, dtype: ScalarType.Int64, device: latents.device).unsqueeze(0).expand(n, steps).contiguous();
        var details = MergeDetails(scored);
        var samples = new EpochSamples
        {
            Prompts = batches.SelectMany(b => b.Prompts.Select(p => p.Prompt)).ToArray(),
            Metadata = batches.SelectMany(b => b.Prompts.Select(p => p.Metadata)).ToArray(),
            PromptEmbeds = cat(all.Select(t => t.PromptEmbeds).ToList(), 0).MoveToOuterDisposeScope(),
            NegativeEmbeds = all[0].NegativeEmbeds is null ? null : cat(all.Select(t => t.NegativeEmbeds!).ToList(), 0).MoveToOuterDisposeScope(),
            Timesteps = timesteps.MoveToOuterDisposeScope(),
            Latents = latents[.., ..(int)steps].contiguous().MoveToOuterDisposeScope(),
            NextLatents = latents[.., 1..].contiguous().MoveToOuterDisposeScope(),
            LogProbs = cat(all.Select(t => t.LogProbs).ToList(), 0).MoveToOuterDisposeScope(),
            Rewards = scored.SelectMany(r => r.Rewards).ToArray(),
            RewardDetails = details,
            // Ids number the groups by global sample index, so that they stay unique in the epoch gathered from several
            // processes, and a group whose samples two processes made stays one group.
            Groups = GlobalGroups((int)n),
        };
        return samples;
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
