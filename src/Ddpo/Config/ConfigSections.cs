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

    /// <summary><c>batch_size</c>: images sampled per batch.</summary>
    public int BatchSize { get; set; } = 1;

    /// <summary><c>num_batches_per_epoch</c>: sampling batches per epoch.</summary>
    public int NumBatchesPerEpoch { get; set; } = 2;
}

/// <summary>The <c>[train]</c> section: optimiser and policy-gradient settings (ddpo-pytorch <c>config.train</c>).</summary>
public sealed class TrainConfig
{
    /// <summary><c>batch_size</c>: trajectories per training micro-batch.</summary>
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

    /// <summary><c>gradient_accumulation_steps</c>: micro-batches (of samples) per optimiser step.</summary>
    public int GradientAccumulationSteps { get; set; } = 1;

    /// <summary><c>max_grad_norm</c>: gradient clipping norm.</summary>
    public double MaxGradNorm { get; set; } = 1.0;

    /// <summary><c>num_inner_epochs</c>: passes over each epoch's samples.</summary>
    public int NumInnerEpochs { get; set; } = 1;

    /// <summary><c>cfg</c>: use classifier-free guidance when re-scoring trajectories during training.</summary>
    public bool Cfg { get; set; } = true;

    /// <summary><c>adv_clip_max</c>: advantages are clamped to [-adv_clip_max, adv_clip_max].</summary>
    public double AdvClipMax { get; set; } = 5;

    /// <summary><c>clip_range</c>: the PPO ratio clip epsilon.</summary>
    public double ClipRange { get; set; } = 1e-4;

    /// <summary><c>timestep_fraction</c>: fraction of each trajectory's timesteps trained on, in (0, 1].</summary>
    public double TimestepFraction { get; set; } = 1.0;

    /// <summary>
    /// <c>loss_scaling</c>: dynamic loss scaling of the backward pass (torch's GradScaler): <c>auto</c> (on when the
    /// UNet runs in fp16, as accelerate's <c>mixed_precision = "fp16"</c>), <c>dynamic</c> (always) or <c>off</c>.
    /// </summary>
    public string LossScaling { get; set; } = "auto";

    /// <summary><c>loss_scale_init</c>: the initial loss scale (GradScaler's <c>init_scale</c>, 2^16).</summary>
    public double LossScaleInit { get; set; } = 65536;

    /// <summary><c>loss_scale_growth_interval</c>: good optimizer steps after which the scale doubles (GradScaler's 2000).</summary>
    public int LossScaleGrowthInterval { get; set; } = 2000;
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
}

/// <summary>The <c>[rwr]</c> section: reward-weighted regression baselines (jannerm/ddpo).</summary>
public sealed class RwrConfig
{
    /// <summary><c>temperature</c> of the softmax weights exp(r / T) (jannerm/ddpo used 1/5).</summary>
    public double Temperature { get; set; } = 0.2;

    /// <summary><c>percentile</c>: <c>rwr_sparse</c> keeps samples whose reward is at least this percentile of the batch.</summary>
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
