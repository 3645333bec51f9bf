using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Rewards;

/// <summary>
/// Creates reward functions by name. The JPEG rewards are built in; other rewards (aesthetic score,
/// alignment) are added with <see cref="Register"/> by the code that can build them, typically with a
/// factory that captures the model folder and device.
/// </summary>
internal sealed class RewardRegistry
{
    private readonly Dictionary<string, Func<IRewardFunction>> _factories = new(StringComparer.Ordinal);

    /// <summary>A registry holding the built-in rewards (<c>jpeg_compressibility</c>, <c>jpeg_incompressibility</c>).</summary>
    public RewardRegistry()
    {
        Register(RewardNames.JpegCompressibility, () => new JpegCompressibilityReward());
        Register(RewardNames.JpegIncompressibility, () => new JpegIncompressibilityReward());
        Register(RewardNames.ImageContrast, () => ImageStatisticReward.Contrast());
        Register(RewardNames.Brightness, () => ImageStatisticReward.Brightness());
        Register(RewardNames.Colorfulness, () => ImageStatisticReward.Colorfulness());
    }

    /// <summary>The registered names, sorted.</summary>
    public IReadOnlyList<string> Names => _factories.Keys.Order(StringComparer.Ordinal).ToArray();

    /// <summary>True when <paramref name="name"/> is registered.</summary>
    public bool Contains(string name) => _factories.ContainsKey(name);

    /// <summary>Adds or replaces the factory for <paramref name="name"/>.</summary>
    public void Register(string name, Func<IRewardFunction> factory)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("reward name must not be empty", nameof(name));
        _factories[name] = factory ?? throw new ArgumentNullException(nameof(factory));
    }

    /// <summary>Creates the reward <paramref name="name"/>; an unknown name is a <see cref="ConfigException"/> naming <c>reward_fn</c>.</summary>
    public IRewardFunction Create(string name)
    {
        if (_factories.TryGetValue(name, out var factory)) return factory();
        if (CodeObjects.IsCodeObject(name))
        {
            throw CodeObjects.NotReconstructible("reward_fn", name, "give the same IRewardFunction in code, or score with a registered reward: --reward NAME");
        }
        throw new ConfigException($"reward_fn: unknown reward '{name}' (registered: {string.Join(", ", Names)})");
    }

    /// <summary>
    /// Creates the reward a config asks for: <paramref name="rewardFn"/> by name, or, when it is
    /// <c>"weighted"</c>, the <see cref="WeightedSumReward"/> of <paramref name="weights"/>.
    /// </summary>
    public IRewardFunction Create(string rewardFn, IReadOnlyDictionary<string, double> weights)
    {
        if (rewardFn != RewardNames.Weighted) return Create(rewardFn);
        if (weights.Count == 0)
        {
            throw new ConfigException("rewards: reward_fn = \"weighted\" needs at least one entry in rewards = { name = weight }");
        }
        var components = weights.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv =>
            _factories.TryGetValue(kv.Key, out var f)
                ? (f(), kv.Value)
                : throw new ConfigException($"rewards.{kv.Key}: unknown reward '{kv.Key}' (registered: {string.Join(", ", Names)})"));
        return new WeightedSumReward(components.ToList());
    }
}
