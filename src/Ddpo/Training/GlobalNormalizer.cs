namespace Ddpo.Training;

/// <summary>
/// Advantages from the whole batch's statistics, used when per-prompt stat tracking is off:
/// <c>(r - mean) / (std + 1e-6)</c> (population std).
/// </summary>
internal static class GlobalNormalizer
{
    /// <summary>Normalises <paramref name="rewards"/> by their own mean and std.</summary>
    public static float[] Normalize(IReadOnlyList<float> rewards)
    {
        var (mean, std) = PerPromptStatTracker.MeanStd(rewards);
        return rewards.Select(r => (float)((r - mean) / (std + PerPromptStatTracker.StdEpsilon))).ToArray();
    }
}
