namespace Ddpo.Schedulers;

/// <summary>
/// What the last DDIM step (the one whose previous timestep is negative) steps to. The two modes differ
/// only when the scheduler's <c>set_alpha_to_one</c> is true; with Stable Diffusion's scheduler
/// (<c>set_alpha_to_one = false</c>) both use <c>alphas_cumprod[0]</c> and give identical numbers.
/// </summary>
public enum DdimFinalStep
{
    /// <summary>
    /// diffusers' <c>DDIMScheduler.step</c>: alpha_cumprod_prev = <c>final_alpha_cumprod</c> (1 when
    /// <c>set_alpha_to_one</c>, else <c>alphas_cumprod[0]</c>). With 1 the last step has zero variance:
    /// it is deterministic and has no log-probability. Plain sampling uses this.
    /// </summary>
    Diffusers,

    /// <summary>
    /// ddpo-pytorch's <c>ddim_step_with_logprob</c>: the previous timestep is clamped at 0, so the last step
    /// uses <c>alphas_cumprod[0]</c> whatever <c>set_alpha_to_one</c> says, and stays stochastic with a log-probability
    /// (unless the last timestep is 0 itself, as with <c>steps_offset = 0</c>).
    /// </summary>
    Ddpo,
}

/// <summary>Config names of <see cref="DdimFinalStep"/> (<c>sample.final_step</c>).</summary>
internal static class DdimFinalSteps
{
    /// <summary>The accepted names, in the order they are listed in errors.</summary>
    public static readonly IReadOnlyList<string> Names = ["ddpo", "diffusers"];

    /// <summary>Parses a config name; null when unknown.</summary>
    public static DdimFinalStep? TryParse(string name) => name switch
    {
        "ddpo" => DdimFinalStep.Ddpo,
        "diffusers" => DdimFinalStep.Diffusers,
        _ => null,
    };

    /// <summary>The config name of <paramref name="mode"/>.</summary>
    public static string ToConfigName(this DdimFinalStep mode) => mode == DdimFinalStep.Ddpo ? "ddpo" : "diffusers";
}
