using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Rewards;

/// <summary>
/// Scores batches in the background while the caller samples the next one (ddpo-pytorch's
/// <c>executor.submit(reward_fn, ...)</c> with two workers). <see cref="Submit"/> copies the images,
/// so the caller may dispose its tensor at once; <see cref="WaitAllAsync"/> returns every pending
/// result in submission order at the end of the epoch.
/// </summary>
internal sealed class RewardPipeline
{
    private readonly IRewardFunction _reward;
    private readonly SemaphoreSlim _slots;
    private readonly List<Task<RewardResult>> _pending = [];
    private readonly object _lock = new();

    /// <summary>Scores with <paramref name="reward"/>, at most <paramref name="maxConcurrency"/> batches at a time.</summary>
    public RewardPipeline(IRewardFunction reward, int maxConcurrency = 2)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrency, 1);
        _reward = reward;
        _slots = new SemaphoreSlim(maxConcurrency, maxConcurrency);
    }

    /// <summary>The reward being computed.</summary>
    public IRewardFunction Reward => _reward;

    /// <summary>Batches submitted since the last <see cref="WaitAllAsync"/>.</summary>
    public int PendingCount
    {
        get { lock (_lock) return _pending.Count; }
    }

    /// <summary>
    /// Starts scoring a copy of <paramref name="batch"/> on the thread pool and returns at once; the
    /// task's result is also returned by the next <see cref="WaitAllAsync"/>.
    /// </summary>
    public Task<RewardResult> Submit(RewardBatch batch, CancellationToken ct = default)
    {
        batch.Validate();
        Tensor copy;
        using (NewDisposeScope())
        {
            copy = batch.Images.detach().to(ScalarType.Float32).cpu().clone().DetachFromDisposeScope();
        }
        var own = new RewardBatch(copy, batch.Prompts.ToArray(), batch.Metadata.ToArray());
        var task = Task.Run(async () =>
        {
            try
            {
                await _slots.WaitAsync(ct).ConfigureAwait(false);
                try
                {
                    var result = await _reward.ScoreAsync(own, ct).ConfigureAwait(false);
                    if (result.Rewards.Length != own.Count)
                    {
                        throw new InvalidOperationException($"reward '{_reward.Name}' returned {result.Rewards.Length} values for {own.Count} images");
                    }
                    return result;
                }
                finally
                {
                    _slots.Release();
                }
            }
            finally
            {
                copy.Dispose();
            }
        }, CancellationToken.None);
        lock (_lock) _pending.Add(task);
        return task;
    }

    /// <summary>Waits for every submitted batch and returns their results in submission order; the queue is then empty.</summary>
    public async Task<IReadOnlyList<RewardResult>> WaitAllAsync(CancellationToken ct = default)
    {
        Task<RewardResult>[] tasks;
        lock (_lock)
        {
            tasks = _pending.ToArray();
            _pending.Clear();
        }
        return await Task.WhenAll(tasks).WaitAsync(ct).ConfigureAwait(false);
    }
}
