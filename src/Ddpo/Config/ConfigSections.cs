namespace Ddpo.Config;

/// <summary>The <c>[sample]</c> section: how trajectories are drawn each epoch (ddpo-pytorch <c>config.sample</c>).</summary>
public sealed class SampleConfig
{
    /// <summary><c>num_steps</c>: DDIM inference steps per trajectory.</summary>
    public int NumSteps { get; set; } = 50;

    /// <summary><c>eta</c>: DDIM noise level, 0 deterministic, 1 DDPM-like (must be &gt; 0 for policy gradients to be defined).</summary>
    public double Eta { get; set; } = 1.0;

    /// <summary><c>guidance_scale</c>: classifier-free guidance weight (1 = no guidance).</summary>
    public double GuidanceScale { get; set; } = 5.0;

    /// <summary>
    /// <c>samples_per_epoch</c>: trajectories sampled per epoch over all processes, ddpo-pytorch's
    /// "Total number of samples per epoch" (<c>sample.batch_size * num_processes * num_batches_per_epoch</c>).
    /// When &gt; 0 it decides <see cref="NumBatchesPerEpoch"/> for the run's number of processes; 0 = not stated
    /// (<see cref="NumBatchesPerEpoch"/> is used as set).
    /// </summary>
    public int SamplesPerEpoch { get; set; }

    /// <summary><c>batch_size</c>: images sampled per batch, per process.</summary>
    public int BatchSize { get; set; } = 1;

    /// <summary>
    /// <c>num_batches_per_epoch</c>: sampling batches per epoch, per process (derived from
    /// <see cref="SamplesPerEpoch"/> when that is stated).
    /// </summary>
    public int NumBatchesPerEpoch { get; set; } = 2;

    /// <summary>
    /// Images per prompt within an epoch (ours; 1 = every sample draws its own prompt, as ddpo-pytorch): the
    /// epoch draws samples / group_size prompts and samples each group_size times in a row. With per-prompt
    /// stat tracking the advantages are then relative to the prompt's own images, which removes what the policy
    /// cannot change (which prompt it drew) from the learning signal.
    /// </summary>
    public int GroupSize { get; set; } = 1;

    /// <summary>
    /// <c>final_step</c>: what the last DDIM step of the trajectories trained on (and of the eval images) steps to.
    /// <c>"ddpo"</c> (default, ddpo-pytorch): the previous timestep is clamped at 0, so the last step uses
    /// alphas_cumprod[0] and is a stochastic action with a log-probability. <c>"diffusers"</c>: diffusers'
    /// final_alpha_cumprod; when the model's scheduler has set_alpha_to_one = true the last step is then
    /// deterministic (zero variance, no log-probability) and is left out of training, which trains on the
    /// other steps. Both give the same numbers when set_alpha_to_one is false (Stable Diffusion).
    /// </summary>
    public Schedulers.DdimFinalStep FinalStep { get; set; } = Schedulers.DdimFinalStep.Ddpo;

    /// <summary>
    /// <c>resolution</c>: the side in pixels of the images sampled for training and evaluation (Flow-GRPO's
    /// <c>config.resolution</c>); 0 (default) is the model's own (its denoiser's sample size times the VAE's factor).
    /// </summary>
    public int Resolution { get; set; }

    /// <summary>
    /// <c>max_sequence_length</c>: T5 tokens of a prompt for models with a T5 encoder; 0 (default) is the family's
    /// diffusers default (SD3 256, FLUX 512; Flow-GRPO encodes SD3 prompts with 128). Ignored by CLIP-only models.
    /// </summary>
    public int MaxSequenceLength { get; set; }

    /// <summary>The values of <see cref="SdeType"/>.</summary>
    public static readonly IReadOnlyList<string> SdeTypes = ["auto", "ddim", "flow_sde", "dance_sde", "cps"];

    /// <summary>
    /// <c>sde_type</c>: the stochastic sampler whose steps are the actions. <c>"auto"</c> (default): DDIM with
    /// <see cref="Eta"/> for Stable Diffusion 1/2, Flow-GRPO's Flow-SDE for flow models (SD3). <c>"ddim"</c> (UNet
    /// models only); for flow models <c>"flow_sde"</c> (Flow-GRPO), <c>"dance_sde"</c> (DanceGRPO) or <c>"cps"</c>
    /// (coefficients-preserving sampling), all as Flow-Factory implements them. For a flow model <see cref="Eta"/> is
    /// the SDE's noise level (Flow-GRPO's <c>noise_level</c>); 0 is the deterministic Euler ODE.
    /// </summary>
    public string SdeType { get; set; } = "auto";

    /// <summary>
    /// <c>init_same_noise</c>: every sample of a prompt's group starts from the same initial latents x_T (DanceGRPO's
    /// and MixGRPO's <c>--init_same_noise</c>), so that the group's rewards differ only through the SDE's per-step noise.
    /// The group's x_T is drawn from a generator of the seed, the epoch and the group id, so it does not depend on how
    /// the group is split over batches or processes. Default false: each image its own x_T, as Flow-GRPO does.
    /// </summary>
    public bool InitSameNoise { get; set; }

    /// <summary>
    /// <c>sde_window</c>: <c>[start, end)</c> over the denoising step indices (0 = the first, noisiest step), or
    /// empty (default: every step). Steps inside are stochastic (<see cref="Eta"/>) and trained; steps outside are
    /// deterministic DDIM (eta 0) and not trained (MixGRPO, Flow-GRPO-Fast). See <c>Ddpo.Training.SdeWindow</c>.
    /// </summary>
    public int[] SdeWindow { get; set; } = [];

    /// <summary>
    /// <c>sde_window_shift</c>: steps the window moves towards the end of the trajectory every
    /// <see cref="SdeWindowShiftEvery"/> epochs (MixGRPO's sliding window: stride), stopping where its end reaches
    /// <c>num_steps</c>; 0 (default) keeps it fixed.
    /// </summary>
    public int SdeWindowShift { get; set; }

    /// <summary><c>sde_window_shift_every</c>: epochs between two moves of the window (MixGRPO's shift interval), default 1.</summary>
    public int SdeWindowShiftEvery { get; set; } = 1;
}

/// <summary>The <c>[train]</c> section: optimiser and policy-gradient settings (ddpo-pytorch <c>config.train</c>).</summary>
public sealed class TrainConfig
{
    /// <summary>
    /// <c>total_batch_size</c>: samples per optimizer step over all processes, ddpo-pytorch's "Total train batch
    /// size (w. parallel, distributed &amp; accumulation)" (<c>train.batch_size * num_processes *
    /// gradient_accumulation_steps</c>). When &gt; 0 it decides <see cref="GradientAccumulationSteps"/> for the
    /// run's number of processes; 0 = not stated (<see cref="GradientAccumulationSteps"/> is used as set).
    /// </summary>
    public int TotalBatchSize { get; set; }

    /// <summary><c>batch_size</c>: trajectories per training micro-batch, per process.</summary>
    public int BatchSize { get; set; } = 1;

    /// <summary><c>learning_rate</c> of AdamW.</summary>
    public double LearningRate { get; set; } = 3e-4;

    /// <summary><c>adam_beta1</c>.</summary>
    public double AdamBeta1 { get; set; } = 0.9;

    /// <summary><c>adam_beta2</c>.</summary>
    public double AdamBeta2 { get; set; } = 0.999;

    /// <summary><c>adam_weight_decay</c>.</summary>
    public double AdamWeightDecay { get; set; } = 1e-4;

    /// <summary><c>adam_epsilon</c>.</summary>
    public double AdamEpsilon { get; set; } = 1e-8;

    /// <summary>
    /// <c>gradient_accumulation_steps</c>: micro-batches (of samples) per optimiser step, per process (derived
    /// from <see cref="TotalBatchSize"/> when that is stated).
    /// </summary>
    public int GradientAccumulationSteps { get; set; } = 1;

    /// <summary><c>max_grad_norm</c>: gradient clipping norm.</summary>
    public double MaxGradNorm { get; set; } = 1.0;

    /// <summary>
    /// <c>max_skipped_steps</c>: optimizer steps in a row whose loss or gradients are not finite (each skipped, weights
    /// and AdamW state untouched) after which the run stops with exit code 3, its newest checkpoint being the last
    /// good one. Under fp16 loss scaling the scaler's own back-off skips (finite loss, scale above 1) do not count.
    /// </summary>
    public int MaxSkippedSteps { get; set; } = 3;

    /// <summary><c>num_inner_epochs</c>: passes over each epoch's samples.</summary>
    public int NumInnerEpochs { get; set; } = 1;

    /// <summary>
    /// <c>cfg</c>: use classifier-free guidance when re-scoring trajectories during training; for RWR, regress the
    /// guided prediction (jannerm/ddpo's <c>train_cfg</c>, with <c>sample.guidance_scale</c>).
    /// </summary>
    public bool Cfg { get; set; } = true;

    /// <summary><c>adv_clip_max</c>: advantages are clamped to [-adv_clip_max, adv_clip_max].</summary>
    public double AdvClipMax { get; set; } = 5;

    /// <summary><c>clip_range</c>: the PPO ratio clip epsilon.</summary>
    public double ClipRange { get; set; } = 1e-4;

    /// <summary><c>timestep_fraction</c>: fraction of each trajectory's timesteps trained on, in (0, 1].</summary>
    public double TimestepFraction { get; set; } = 1.0;

    /// <summary>
    /// <c>kl_coef</c>: weight of the KL divergence between the policy's and the base model's Gaussian transition at
    /// every trained step, ||mean_policy - mean_base||^2 / (2 std^2) averaged like the log-probabilities, added to the
    /// loss (Flow-GRPO's <c>train.beta</c>). The base model is the UNet with its LoRA adapters switched off, or a frozen
    /// copy of the initial weights with full fine-tuning. 0 (default) computes nothing.
    /// </summary>
    public double KlCoef { get; set; }

    /// <summary>
    /// <c>loss_scaling</c>: dynamic loss scaling of the backward pass (torch's GradScaler): <c>auto</c> (on when the
    /// UNet runs in fp16, as accelerate's <c>mixed_precision = "fp16"</c>), <c>dynamic</c> (always) or <c>off</c>.
    /// </summary>
    public string LossScaling { get; set; } = "auto";

    /// <summary><c>loss_scale_init</c>: the initial loss scale (GradScaler's <c>init_scale</c>, 2^16).</summary>
    public double LossScaleInit { get; set; } = 65536;

    /// <summary><c>loss_scale_growth_interval</c>: good optimizer steps after which the scale doubles (GradScaler's 2000).</summary>
    public int LossScaleGrowthInterval { get; set; } = 2000;

    /// <summary>
    /// <c>ema</c>: keep an exponential moving average of the trainable weights (LoRA or full), updated after optimizer
    /// steps (Flow-GRPO's <c>train.ema</c>, <c>flow_grpo/ema.py</c> EMAModuleWrapper). When on, the fixed-seed eval
    /// images, the exported weights (run folder and checkpoints) and <c>ddpo eval</c> use the average; training and
    /// sampling use the live weights. Default false.
    /// </summary>
    public bool Ema { get; set; }

    /// <summary>
    /// <c>ema_decay</c>: the EMA's largest decay; after n optimizer steps the decay used is
    /// min((1 + n) / (10 + n), ema_decay) (EMAModuleWrapper's warm-up). Flow-GRPO's train_sd3.py uses 0.9.
    /// </summary>
    public double EmaDecay { get; set; } = 0.9;

    /// <summary>
    /// <c>ema_update_interval</c>: the EMA is updated after optimizer step n (n counted from 1 over the run) when
    /// (n + 1) is a multiple of this (EMAModuleWrapper's update_step_interval; Flow-GRPO's train_sd3.py uses 8).
    /// </summary>
    public int EmaUpdateInterval { get; set; } = 8;
}

/// <summary>The <c>[per_prompt_stat_tracking]</c> section (ddpo-pytorch <c>config.per_prompt_stat_tracking</c>).</summary>
public sealed class PerPromptStatTrackingConfig
{
    /// <summary><c>enabled</c>: normalise rewards per prompt; when false, by the whole epoch's mean and std.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary><c>buffer_size</c>: rewards remembered per prompt, across epochs.</summary>
    public int BufferSize { get; set; } = 16;

    /// <summary><c>min_count</c>: below this many remembered rewards the batch statistics are used instead.</summary>
    public int MinCount { get; set; } = 16;
}

/// <summary>The <c>[lora]</c> section: adapter size when <c>use_lora</c> is true.</summary>
public sealed class LoraConfig
{
    /// <summary><c>rank</c> of the LoRA matrices (diffusers' default 4).</summary>
    public int Rank { get; set; } = 4;

    /// <summary><c>alpha</c>: the LoRA output is scaled by alpha / rank (alpha = rank gives scale 1, as diffusers' default).</summary>
    public double Alpha { get; set; } = 4;

    /// <summary>
    /// <c>init</c>: how the down projections start (up starts at zero either way). <c>"gaussian"</c> (default):
    /// N(0, (1/rank)^2), diffusers 0.17's LoRALinearLayer as ddpo-pytorch uses it (PEFT's
    /// <c>init_lora_weights="gaussian"</c>). <c>"kaiming_uniform"</c>: U(-1/sqrt(in_features), 1/sqrt(in_features)),
    /// PEFT's default (<c>init_lora_weights=True</c>).
    /// </summary>
    public Models.Lora.LoraInit Init { get; set; } = Models.Lora.LoraInit.Gaussian;
}

/// <summary>The <c>[rwr]</c> section: reward-weighted regression baselines, with jannerm/ddpo's meanings.</summary>
public sealed class RwrConfig
{
    /// <summary>
    /// <c>temperature</c>: <c>rwr</c> weights each sample by softmax(rewards · temperature) · N over the epoch's
    /// N samples (jannerm/ddpo's key and meaning: it multiplies the rewards, so larger is sharper and 0 is
    /// uniform; its RWR configs use 1/5 with rewards in kB).
    /// </summary>
    public double Temperature { get; set; } = 0.2;

    /// <summary>
    /// <c>percentile</c>: <c>rwr_sparse</c> trains, unweighted, on the epoch's samples whose reward is at least
    /// this percentile (numpy's linear interpolation) of the epoch's rewards (jannerm/ddpo used 90).
    /// </summary>
    public double Percentile { get; set; } = 90;
}

/// <summary>The <c>[logging]</c> section.</summary>
public sealed class LoggingConfig
{
    /// <summary><c>image_every</c>: save sample images every this many epochs (0 = never).</summary>
    public int ImageEvery { get; set; } = 1;

    /// <summary><c>num_eval_images</c>: how many images to save each time.</summary>
    public int NumEvalImages { get; set; } = 4;
}

/// <summary>The <c>[pretrained]</c> section: how the frozen weights are held.</summary>
public sealed class PretrainedConfig
{
    /// <summary>
    /// <c>dtype</c> of the frozen weights (VAE, text encoder, non-LoRA UNet): <c>fp32</c>, <c>fp16</c>, <c>bf16</c> or
    /// <c>auto</c>: fp16 on CUDA (ddpo-pytorch's <c>mixed_precision = "fp16"</c>), fp32 on the CPU (where fp16 runs,
    /// but slower than fp32). Trainable LoRA parameters and the optimizer state are float32 whatever this says.
    /// </summary>
    public string Dtype { get; set; } = "auto";
}
