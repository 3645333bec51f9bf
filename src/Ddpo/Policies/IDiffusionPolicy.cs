using Ddpo.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Policies;

/// <summary>
/// A text-to-image model family as a policy over the denoising MDP: what the trainer, the evaluation and the GPU
/// check use of a model, and nothing else. Stable Diffusion 1.x/2.x with DDIM is one implementation
/// (<c>Pipelines.StableDiffusionPolicy</c>); a flow-matching transformer with an SDE sampler is another
/// (docs/architecture.md, "Adding a model family"). Frozen parts run in <see cref="DType"/>; latents and the sampler's
/// math stay float32.
/// </summary>
internal interface IDiffusionPolicy : IDisposable
{
    /// <summary>The family, for messages (e.g. "Stable Diffusion (DDIM)").</summary>
    string Family { get; }

    /// <summary>Where the models run.</summary>
    Device Device { get; }

    /// <summary>The dtype of the frozen weights (and of the denoiser's base weights under LoRA).</summary>
    ScalarType DType { get; }

    /// <summary>The module training changes: trained whole, or with LoRA on its <see cref="LoraTargets"/>.</summary>
    nn.Module Denoiser { get; }

    /// <summary>The denoiser's folder name in a diffusers pipeline (<c>unet</c>, <c>transformer</c>): exported weights are <c>NAME.safetensors</c>.</summary>
    string DenoiserName { get; }

    /// <summary>The names (last parts of module paths) of the linear layers LoRA attaches to (diffusers' target modules).</summary>
    IReadOnlyList<string> LoraTargets { get; }

    /// <summary>The image side in pixels the denoiser was configured for.</summary>
    int DefaultImageSize { get; }

    /// <summary>Encodes prompts (no gradient) to the family's conditioning, on <see cref="Device"/>.</summary>
    Conditioning Encode(IReadOnlyList<string> prompts);

    /// <summary>
    /// True when sampling with <paramref name="options"/> needs an unconditional conditioning (classifier-free
    /// guidance); false for a family that guides through an embedding, or without guidance.
    /// </summary>
    bool NeedsUnconditional(SamplingOptions options);

    /// <summary>
    /// Samples one trajectory per row of <paramref name="condition"/> (no gradient). Initial and per-step noise are
    /// drawn on the CPU from <paramref name="generator"/>, so that a seed gives the same images on every device.
    /// <paramref name="unconditional"/> is given when <see cref="NeedsUnconditional"/> says so.
    /// <paramref name="progress"/> receives the number of finished steps.
    /// </summary>
    /// <paramref name="initialNoise"/>, when given, is x_T for every row (as <see cref="InitialNoise"/> makes it; not taken
    /// over), and only the per-step noise is drawn.
    Rollout Sample(Conditioning condition, Conditioning? unconditional, SamplingOptions options, Generator? generator, IProgress<int>? progress,
        Tensor? initialNoise = null);

    /// <summary>How many of the steps of <paramref name="options"/>, from the first, are stochastic: the actions to train.</summary>
    int StochasticSteps(SamplingOptions options);

    /// <summary>
    /// Re-evaluates recorded transitions under the current weights with the sampling's guidance, noise level and final
    /// step: the log-probability of each recorded next sample, and the step's mean and std (for a KL). Gradients flow
    /// when enabled.
    /// </summary>
    Transition Evaluate(TransitionBatch batch, SamplingOptions options);

    /// <summary>What <see cref="Predict"/> returns: the noise (DDIM families) or the velocity (flow families).</summary>
    PredictionType Prediction { get; }

    /// <summary>
    /// The denoiser's output at <paramref name="latents"/> (the family's latent layout, as in <see cref="Rollout.Final"/>)
    /// and <paramref name="times"/> (0-d or [B], in the units of <see cref="Rollout.Times"/>), guided as
    /// <see cref="Evaluate"/> guides: with <paramref name="unconditional"/> and <paramref name="guidanceScale"/> for a
    /// classifier-free family, through the guidance embedding for FLUX. Float32 (float64 for a float64 denoiser), on
    /// <see cref="Device"/>; gradients flow when enabled. The building block of algorithms that need the model's output
    /// rather than a step's log-probability (reward backpropagation, DiffusionNFT).
    /// </summary>
    Tensor Predict(Tensor latents, Tensor times, Conditioning condition, Conditioning? unconditional, double guidanceScale);

    /// <summary>
    /// The family's denoising (regression) loss on clean samples <paramref name="x0"/>, per sample [B]: a random
    /// time and fresh noise per sample drawn from <paramref name="generator"/> (reward-weighted regression).
    /// </summary>
    Tensor DenoisingLoss(Tensor x0, Conditioning condition, Conditioning? unconditional, double guidanceScale, Generator generator);

    /// <summary>Makes the draws <see cref="DenoisingLoss"/> makes for a batch of <paramref name="x0Shape"/> and discards them.</summary>
    void SkipDenoisingDraws(long[] x0Shape, Generator generator);

    /// <summary>Final latents to images [B, 3, H, W] float32 in [0, 1] on the CPU.</summary>
    Tensor Decode(Tensor latents);

    /// <summary>
    /// The initial latents x_T of <paramref name="count"/> samples with <paramref name="options"/>' size, in the family's
    /// latent layout, drawn on the CPU from <paramref name="generator"/> exactly as <see cref="Sample"/> draws them first
    /// (so the same seed starts from the same noise), float32 on <see cref="Device"/>. For reward backpropagation, which
    /// runs its own loop with gradients.
    /// </summary>
    Tensor InitialNoise(long count, SamplingOptions options, Generator? generator);

    /// <summary>
    /// The sampler <see cref="Sample"/> steps with for <paramref name="options"/> (its <see cref="IStepSampler.Schedule"/>
    /// gives the times <see cref="Predict"/> takes; its <see cref="IStepSampler.Step"/> is differentiable in the model
    /// output and the sample). A family refuses a sampler it does not have, as <see cref="Sample"/> does.
    /// </summary>
    IStepSampler Sampler(SamplingOptions options);

    /// <summary>
    /// Forward diffusion of clean latents <paramref name="x0"/> to <paramref name="times"/> (0-d or [B], schedule units)
    /// with <paramref name="noise"/>: DDPM's <c>sqrt(a) x0 + sqrt(1 - a) noise</c>, a flow's <c>(1 - sigma) x0 + sigma noise</c>.
    /// Differentiable; DRaFT-LV re-noises its final sample with it.
    /// </summary>
    Tensor AddNoise(Tensor x0, Tensor noise, Tensor times);

    /// <summary>
    /// The clean latents the denoiser's output <paramref name="modelOutput"/> (<see cref="Predict"/>'s) implies at
    /// <paramref name="latents"/> and <paramref name="times"/>: DDIM's <c>pred_original_sample</c>, a flow's
    /// <c>x - sigma v</c>. Differentiable; ReFL decodes it.
    /// </summary>
    Tensor PredictOriginal(Tensor modelOutput, Tensor latents, Tensor times);

    /// <summary>
    /// <see cref="Decode"/> with the graph kept: latents to images [B, 3, H, W] in [0, 1] on <see cref="Device"/>, float32
    /// (float64 for a float64 model), differentiable with respect to <paramref name="latents"/> (the frozen decoder's
    /// weights get no gradient). Pixels clamped to [0, 1] get none either, as in AlignProp and ReFL.
    /// </summary>
    Tensor DecodeDifferentiable(Tensor latents);

    /// <summary>
    /// The policy with a frozen copy of the denoiser as it is now (the base model of a KL penalty when the whole
    /// denoiser is trained); it shares the encoders and sampler, and disposing it frees only the copy.
    /// </summary>
    IDiffusionPolicy FrozenCopy();
}
