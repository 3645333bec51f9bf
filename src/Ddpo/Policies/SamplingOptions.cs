using Ddpo.Schedulers;

namespace Ddpo.Policies;

/// <summary>How to sample: DDIM steps, eta (stochasticity; DDPO needs eta &gt; 0), guidance scale and size.</summary>
public sealed record SamplingOptions
{
    /// <summary>Number of DDIM steps (ddpo-pytorch: sample.num_steps).</summary>
    public int NumSteps { get; init; } = 50;
    /// <summary>DDIM eta: 0 is deterministic, 1 is DDPM-like (ddpo-pytorch default 1.0); a flow model's SDE noise level (Flow-GRPO's <c>noise_level</c>).</summary>
    public double Eta { get; init; } = 1.0;
    /// <summary>Classifier-free guidance scale; 1 disables guidance (no unconditional pass).</summary>
    public double GuidanceScale { get; init; } = 5.0;
    /// <summary>Image height in pixels; null uses the model's default.</summary>
    public int? Height { get; init; }
    /// <summary>Image width in pixels; null uses the model's default.</summary>
    public int? Width { get; init; }
    /// <summary>
    /// What the last DDIM step steps to: diffusers' (the default, so plain sampling gives diffusers' numbers)
    /// or ddpo-pytorch's (training, <c>sample.final_step</c>). See <see cref="DdimFinalStep"/>.
    /// </summary>
    public DdimFinalStep FinalStep { get; init; } = DdimFinalStep.Diffusers;
    /// <summary>
    /// The stochastic sampler by name (<c>"ddim"</c>; for flow models <c>"flow_sde"</c>, <c>"dance_sde"</c>, <c>"cps"</c>),
    /// or null for the family's own (DDIM for UNet models, Flow-GRPO's Flow-SDE for flow models). A family refuses a
    /// sampler it does not have.
    /// </summary>
    public string? SdeType { get; init; }
    /// <summary>Record the latents and per-step log-probs (what DDPO trains on).</summary>
    public bool RecordTrajectory { get; init; }

    /// <summary>
    /// The steps that are stochastic (eta = <see cref="Eta"/>); the others are deterministic DDIM steps (eta 0). Null
    /// (default): every step. The noise of every step is drawn either way, so a window changes no other step's noise.
    /// </summary>
    public StepWindow? SdeWindow { get; init; }

    /// <summary>The eta of step <paramref name="step"/>: <see cref="Eta"/> inside <see cref="SdeWindow"/>, 0 outside.</summary>
    public double EtaAt(int step) => SdeWindow is { } w && !w.Contains(step) ? 0.0 : Eta;

    /// <summary>True when the unconditional branch must run.</summary>
    public bool UsesGuidance => GuidanceScale > 1.0;

    /// <summary>Throws <see cref="ArgumentException"/> naming the option when a value is out of range.</summary>
    public void Validate()
    {
        if (NumSteps < 1) throw new ArgumentException($"steps must be >= 1, got {NumSteps}");
        if (Eta < 0 || double.IsNaN(Eta)) throw new ArgumentException($"eta must be >= 0, got {Eta}");
        if (GuidanceScale < 0 || double.IsNaN(GuidanceScale)) throw new ArgumentException($"guidance must be >= 0, got {GuidanceScale}");
        if (Height is < 8 || Width is < 8) throw new ArgumentException("height and width must be at least 8 pixels");
    }
}
