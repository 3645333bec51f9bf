using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Policies;

/// <summary>Images from a policy for a list of prompts: the fixed-seed image grids of a run and evaluation.</summary>
internal static class PolicySampling
{
    /// <summary>
    /// One image per prompt [B, 3, H, W] in [0, 1] on the CPU, without recording a trajectory: the prompts encoded
    /// together, the empty negative prompt when the family guides with an unconditional pass, noise from
    /// <paramref name="generator"/>.
    /// </summary>
    public static Tensor Images(IDiffusionPolicy policy, IReadOnlyList<string> prompts, SamplingOptions options, Generator? generator,
        IProgress<int>? progress = null, string negativePrompt = "")
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (condition, unconditional) = Conditions(policy, prompts, options, negativePrompt);
        var rollout = policy.Sample(condition, unconditional, options with { RecordTrajectory = false }, generator, progress);
        return policy.Decode(rollout.Final).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The prompts' conditioning and, when the family guides with an unconditional pass, the negative prompt's repeated
    /// to as many rows (encoded after the prompts); the caller owns both.
    /// </summary>
    public static (Conditioning Condition, Conditioning? Unconditional) Conditions(IDiffusionPolicy policy, IReadOnlyList<string> prompts,
        SamplingOptions options, string negativePrompt = "")
    {
        if (prompts.Count == 0) throw new ArgumentException("at least one prompt is needed");
        var condition = policy.Encode(prompts);
        if (!policy.NeedsUnconditional(options)) return (condition, null);
        using var one = policy.Encode([negativePrompt]);
        return (condition, one.Expand(prompts.Count));
    }
}
