using Ddpo.Base;

namespace Ddpo.Config;

/// <summary>
/// The relations the GRPO-era keys need (<c>algorithm = "grpo"</c>, <c>train.kl_coef</c>, <c>sample.sde_window</c>):
/// each problem is a <see cref="ConfigException"/> naming the key and where it was set.
/// </summary>
internal static class GroupPolicyChecks
{
    public static void Validate(DdpoConfig config)
    {
        var s = config.Sample;
        if (config.Algorithm is TrainingAlgorithm.Grpo or TrainingAlgorithm.Nft && s.GroupSize < 2)
        {
            throw config.Problem("sample.group_size",
                $"algorithm = \"{config.Algorithm.ToConfigName()}\" compares each image with the other images of its prompt's group, so it needs sample.group_size >= 2, got {s.GroupSize}");
        }
        if (config.Algorithm == TrainingAlgorithm.Nft && config.Train.KlCoef > 0)
        {
            throw config.Problem("train.kl_coef",
                "is the KL of the recorded SDE transitions, which algorithm = \"nft\" does not train: its KL to the base model is nft.kl_coef (on the velocities); set train.kl_coef = 0");
        }
        if (config.Train.KlCoef > 0 && config.Algorithm is TrainingAlgorithm.Rwr or TrainingAlgorithm.RwrSparse)
        {
            throw config.Problem("train.kl_coef",
                $"the KL penalty is taken on the trained denoising transitions, which algorithm = \"{config.Algorithm.ToConfigName()}\" does not train (it regresses final samples); use ddpo_is, ddpo_sf or grpo, or kl_coef = 0");
        }
        if (s.SdeWindow is [_, var end] && end > s.NumSteps)
        {
            throw config.Problem("sample.sde_window",
                $"[{s.SdeWindow[0]}, {end}) reaches past the last step: end must be <= sample.num_steps = {s.NumSteps}");
        }
        if (s.SdeWindow.Length == 0 && s.SdeWindowShift > 0)
        {
            throw config.Problem("sample.sde_window_shift",
                $"moves the window of sample.sde_window, which is not set (every step is stochastic); set sample.sde_window = [start, end] or the shift to 0");
        }
    }
}
