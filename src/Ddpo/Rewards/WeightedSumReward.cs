using static TorchSharp.torch;
using Ddpo.Prompts;

namespace Ddpo.Rewards;

/// <summary>
/// The weighted sum of several rewards. Components are scored concurrently; the details hold each
/// component's unweighted rewards under its name, and its own details as <c>name/key</c>. Differentiable
/// (<see cref="ScoreDifferentiable"/>) when every component is (<see cref="IsDifferentiable"/>).
/// </summary>
public sealed class WeightedSumReward : IDifferentiableReward, IPromptRequirements
{
    private readonly (IRewardFunction Reward, double Weight)[] _components;

    /// <summary>Combines <paramref name="components"/>; names must be distinct and weights finite.</summary>
    public WeightedSumReward(IEnumerable<(IRewardFunction Reward, double Weight)> components)
    {
        _components = components.ToArray();
        if (_components.Length == 0)
        {
            throw new ArgumentException("WeightedSumReward: needs at least one component");
        }
        foreach (var (reward, weight) in _components)
        {
            if (!double.IsFinite(weight))
            {
                throw new ArgumentException($"WeightedSumReward: weight of '{reward.Name}' must be finite, got {weight}");
            }
        }
        var duplicate = _components.GroupBy(c => c.Reward.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException($"WeightedSumReward: component '{duplicate.Key}' appears more than once");
        }
    }

    /// <summary>The components and their weights.</summary>
    public IReadOnlyList<(IRewardFunction Reward, double Weight)> Components => _components;

    /// <inheritdoc/>
    public string Name => "weighted(" + string.Join(" + ", _components.Select(c => $"{c.Weight:g6}*{c.Reward.Name}")) + ")";

    /// <inheritdoc/>
    public async Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        var results = await Task.WhenAll(_components.Select(c => c.Reward.ScoreAsync(batch, ct))).ConfigureAwait(false);
        var total = new double[batch.Count];
        var details = new Dictionary<string, float[]>();
        for (int c = 0; c < _components.Length; c++)
        {
            var (reward, weight) = _components[c];
            var r = results[c].Rewards;
            if (r.Length != batch.Count)
            {
                throw new InvalidOperationException($"reward '{reward.Name}' returned {r.Length} values for {batch.Count} images");
            }
            for (int i = 0; i < r.Length; i++) total[i] += weight * r[i];
            details[reward.Name] = r;
            if (results[c].Details is { } sub)
            {
                foreach (var (key, values) in sub) details[$"{reward.Name}/{key}"] = values;
            }
        }
        return new RewardResult(total.Select(v => (float)v).ToArray(), details);
    }

    /// <summary>True when every component is an <see cref="IDifferentiableReward"/>, so that <see cref="ScoreDifferentiable"/> works.</summary>
    public bool IsDifferentiable => _components.All(c => c.Reward is IDifferentiableReward d && (d is not WeightedSumReward w || w.IsDifferentiable));

    /// <summary>The components that are not differentiable (empty when <see cref="IsDifferentiable"/>).</summary>
    public IEnumerable<string> NonDifferentiableComponents => _components
        .Where(c => c.Reward is not IDifferentiableReward || (c.Reward is WeightedSumReward w && !w.IsDifferentiable)).Select(c => c.Reward.Name);

    /// <inheritdoc />
    /// <remarks>The weighted sum of the components' differentiable scores; throws when a component is not differentiable.</remarks>
    public Tensor ScoreDifferentiable(Tensor images, IReadOnlyList<string> prompts)
    {
        if (!IsDifferentiable)
        {
            throw new InvalidOperationException($"{Name}: component(s) {string.Join(", ", NonDifferentiableComponents)} are not differentiable");
        }
        using var scope = NewDisposeScope();
        Tensor? total = null;
        foreach (var (reward, weight) in _components)
        {
            var part = ((IDifferentiableReward)reward).ScoreDifferentiable(images, prompts) * weight;
            total = total is null ? part : total + part;
        }
        return total!.MoveToOuterDisposeScope();
    }

    void IPromptRequirements.CheckPrompts(IEnumerable<PromptSample> prompts, string source) =>
        RewardPromptChecks.CheckAll(_components.Select(c => c.Reward), prompts, source);
}
