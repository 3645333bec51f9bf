namespace Ddpo.Config;

/// <summary>
/// The keys of the reward-backpropagation sections (<c>[draft]</c>, <c>[refl]</c>, <c>[alignprop]</c>), added to
/// <see cref="ConfigSchema.Keys"/>, and their relations to <c>sample.num_steps</c> (checked only for the algorithm
/// that uses them).
/// </summary>
internal static class BackpropKeys
{
    /// <summary>The sections, in the order they are written.</summary>
    public static readonly string[] Sections = ["draft", "refl", "alignprop"];

    public static void Add(List<ConfigKey> keys)
    {
        void Int(string path, Func<DdpoConfig, int> get, Action<DdpoConfig, int> set, int min) =>
            keys.Add(new ConfigKey(path, ConfigValueKind.Integer, c => get(c), (c, v) => set(c, (int)v),
                v => (int)v >= min ? null : $"must be >= {min}, got {(int)v}"));

        Int("draft.k", c => c.Draft.K, (c, v) => c.Draft.K = v, 1);
        keys.Add(new ConfigKey("draft.reward_scale", ConfigValueKind.Float, c => c.Draft.RewardScale, (c, v) => c.Draft.RewardScale = (double)v,
            v => double.IsFinite((double)v) && (double)v > 0 ? null : $"must be a finite number > 0, got {ConfigSchema.Fmt((double)v)}"));
        Int("draft.lv_samples", c => c.Draft.LvSamples, (c, v) => c.Draft.LvSamples = v, 1);
        keys.Add(new ConfigKey("draft.checkpointing", ConfigValueKind.Boolean, c => c.Draft.Checkpointing, (c, v) => c.Draft.Checkpointing = (bool)v, _ => null));
        Int("refl.min_step", c => c.Refl.MinStep, (c, v) => c.Refl.MinStep = v, 0);
        Int("refl.max_step", c => c.Refl.MaxStep, (c, v) => c.Refl.MaxStep = v, 0);
        Int("alignprop.min_k", c => c.AlignProp.MinK, (c, v) => c.AlignProp.MinK = v, 1);
        Int("alignprop.max_k", c => c.AlignProp.MaxK, (c, v) => c.AlignProp.MaxK = v, 1);
    }

    /// <summary>The reward-backpropagation algorithm's settings against <c>sample.num_steps</c>.</summary>
    public static void Validate(DdpoConfig config)
    {
        int steps = config.Sample.NumSteps;
        switch (config.Algorithm)
        {
            case TrainingAlgorithm.Draft when config.Draft.K > steps:
                throw config.Problem("draft.k", $"{config.Draft.K} steps to backpropagate through, but sample.num_steps is {steps}");
            case TrainingAlgorithm.Refl when config.Refl.MinStep > config.Refl.MaxStep:
                throw config.Problem("refl.min_step", $"{config.Refl.MinStep} is above refl.max_step = {config.Refl.MaxStep}");
            case TrainingAlgorithm.Refl when config.Refl.MaxStep >= steps:
                throw config.Problem("refl.max_step", $"step index {config.Refl.MaxStep} does not exist with sample.num_steps = {steps} (indices 0..{steps - 1})");
            case TrainingAlgorithm.AlignProp when config.AlignProp.MinK > config.AlignProp.MaxK:
                throw config.Problem("alignprop.min_k", $"{config.AlignProp.MinK} is above alignprop.max_k = {config.AlignProp.MaxK}");
            case TrainingAlgorithm.AlignProp when config.AlignProp.MaxK > steps:
                throw config.Problem("alignprop.max_k", $"{config.AlignProp.MaxK} steps to backpropagate through, but sample.num_steps is {steps}");
        }
    }
}
