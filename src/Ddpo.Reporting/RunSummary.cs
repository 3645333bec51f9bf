namespace Ddpo.Reporting;

/// <summary>The headline numbers of a run, computed from its metrics.</summary>
internal sealed record RunSummary
{
    /// <summary>The names of the per-phase timing fields, in stacking order.</summary>
    public static readonly IReadOnlyList<string> PhaseKeys = ["sampling_s", "reward_s", "training_s", "eval_images_s"];

    /// <summary>Number of logged epochs.</summary>
    public int EpochCount { get; init; }

    /// <summary>First logged epoch number, or null where none.</summary>
    public int? FirstEpoch { get; init; }

    /// <summary>Last logged epoch number, or null where none.</summary>
    public int? LastEpoch { get; init; }

    /// <summary>Sum of <c>samples</c> over epochs.</summary>
    public double Samples { get; init; }

    /// <summary>Sum of <c>samples_trained</c> over epochs.</summary>
    public double SamplesTrained { get; init; }

    /// <summary>Sum of <c>nonfinite_rewards</c> over epochs.</summary>
    public double NonfiniteRewards { get; init; }

    /// <summary>Epoch of the first finite <c>reward_mean</c>, or null.</summary>
    public int? FirstRewardEpoch { get; init; }

    /// <summary><c>reward_mean</c> at <see cref="FirstRewardEpoch"/> (NaN where none).</summary>
    public double FirstReward { get; init; } = double.NaN;

    /// <summary><c>reward_sem</c> at <see cref="FirstRewardEpoch"/>.</summary>
    public double FirstRewardSem { get; init; } = double.NaN;

    /// <summary>Epoch of the last finite <c>reward_mean</c>, or null.</summary>
    public int? LastRewardEpoch { get; init; }

    /// <summary><c>reward_mean</c> at <see cref="LastRewardEpoch"/>.</summary>
    public double LastReward { get; init; } = double.NaN;

    /// <summary><c>reward_sem</c> at <see cref="LastRewardEpoch"/>.</summary>
    public double LastRewardSem { get; init; } = double.NaN;

    /// <summary>Epoch with the highest finite <c>reward_mean</c>, or null.</summary>
    public int? BestEpoch { get; init; }

    /// <summary>The highest finite <c>reward_mean</c>.</summary>
    public double BestReward { get; init; } = double.NaN;

    /// <summary>Last minus first reward (NaN with fewer than two distinct reward epochs).</summary>
    public double Change => FirstRewardEpoch is { } a && LastRewardEpoch is { } b && a != b ? LastReward - FirstReward : double.NaN;

    /// <summary>
    /// <see cref="Change"/> in standard errors: change / sqrt(sem_first² + sem_last²). NaN where either SEM
    /// is unknown or both are zero.
    /// </summary>
    public double ChangeInSems
    {
        get
        {
            var se = Math.Sqrt(FirstRewardSem * FirstRewardSem + LastRewardSem * LastRewardSem);
            return se > 0 ? Change / se : double.NaN;
        }
    }

    /// <summary>Total seconds per phase (<see cref="PhaseKeys"/> that were logged).</summary>
    public IReadOnlyDictionary<string, double> PhaseSeconds { get; init; } = new Dictionary<string, double>();

    /// <summary>Time between the first and last logged <c>time</c> stamps, or null.</summary>
    public TimeSpan? WallClock { get; init; }

    /// <summary>The last logged <c>time</c> stamp, or null.</summary>
    public DateTimeOffset? LastTime { get; init; }

    /// <summary>Computes the summary of <paramref name="run"/>.</summary>
    public static RunSummary Of(RunData run)
    {
        var epochs = run.Epochs;
        var withReward = epochs.Where(e => double.IsFinite(e["reward_mean"])).ToList();
        var first = withReward.FirstOrDefault();
        var last = withReward.LastOrDefault();
        var best = withReward.MaxBy(e => e["reward_mean"]);
        var times = epochs.Select(e => e.Time).OfType<DateTimeOffset>().ToList();
        return new RunSummary
        {
            EpochCount = epochs.Count,
            FirstEpoch = epochs.Count > 0 ? epochs[0].Epoch : null,
            LastEpoch = epochs.Count > 0 ? epochs[^1].Epoch : null,
            Samples = SumFinite(run, "samples"),
            SamplesTrained = SumFinite(run, "samples_trained"),
            NonfiniteRewards = SumFinite(run, "nonfinite_rewards"),
            FirstRewardEpoch = first?.Epoch,
            FirstReward = first?["reward_mean"] ?? double.NaN,
            FirstRewardSem = first?["reward_sem"] ?? double.NaN,
            LastRewardEpoch = last?.Epoch,
            LastReward = last?["reward_mean"] ?? double.NaN,
            LastRewardSem = last?["reward_sem"] ?? double.NaN,
            BestEpoch = best?.Epoch,
            BestReward = best?["reward_mean"] ?? double.NaN,
            PhaseSeconds = PhaseKeys.Where(run.Has).ToDictionary(k => k, k => SumFinite(run, k)),
            WallClock = times.Count > 1 ? times.Max() - times.Min() : null,
            LastTime = times.Count > 0 ? times.Max() : null,
        };
    }

    private static double SumFinite(RunData run, string key) => run.Series(key).Where(double.IsFinite).Sum();
}
