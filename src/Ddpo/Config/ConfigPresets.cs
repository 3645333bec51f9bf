using Ddpo.Base;
using Ddpo.Rewards;

namespace Ddpo.Config;

/// <summary>
/// The experiment presets of ddpo-pytorch's <c>config/dgx.py</c> (<c>compressibility</c>, <c>incompressibility</c>,
/// <c>aesthetic</c>, <c>prompt_image_alignment</c>). They state the paper's totals, which dgx.py wrote as per-GPU
/// sizes for its machine (8 GPUs; 6 for alignment, whose other 2 served LLaVA): samples per epoch
/// (<c>sample.samples_per_epoch</c>) and per optimizer step (<c>train.total_batch_size</c>), with dgx.py's per-GPU
/// batch sizes; the per-process batch counts and accumulation steps are derived for the run's number of processes,
/// so any number of devices draws the paper's samples (on 8 GPUs exactly dgx.py's sizes).
/// Departures: <c>num_checkpoint_limit</c> stays at the base value 5 (dgx.py keeps every checkpoint). The alignment preset uses <see cref="RewardNames.PromptImageAlignment"/>:
/// a VLM behind an OpenAI-compatible server (<c>reward.vlm.base_url</c>) in place of the LLaVA server, and BERTScore in
/// process (the built-in all-MiniLM-L6-v2 unless <c>reward.bertscore.model</c> names a BERT folder).
/// The <c>-grpo</c> presets run the same tasks with GRPO and a KL penalty, with Flow-GRPO's values (see <c>Grpo</c>).
/// </summary>
public static class ConfigPresets
{
    private const string Compressibility = $"""
        num_epochs = 100
        use_lora = true
        save_freq = 1
        prompt_fn = "imagenet_animals"
        prompt_fn_kwargs = {"{}"}
        reward_fn = "{RewardNames.JpegCompressibility}"

        [sample]
        num_steps = 50
        eta = 1.0
        guidance_scale = 5.0
        samples_per_epoch = 256 # dgx.py: 8 GPUs x batch_size 8 x num_batches_per_epoch 4
        batch_size = 8

        [train]
        total_batch_size = 64 # dgx.py: 8 GPUs x batch_size 4 x gradient_accumulation_steps 2 (4 steps per epoch)
        batch_size = 4
        learning_rate = 3e-4
        clip_range = 1e-4
        adv_clip_max = 5.0
        timestep_fraction = 1.0
        num_inner_epochs = 1

        [per_prompt_stat_tracking]
        enabled = true
        buffer_size = 16
        min_count = 16
        """;

    /// <summary>
    /// Sizes the paper's tasks for the built-in 32-pixel model on a CPU: 10 steps and 96 samples per epoch, the
    /// prompts it was pretrained on, float32 weights, no classifier-free guidance. The learning signal of one epoch
    /// is weak against the noise of its gradient (with 48 guided samples the first updates went in a direction set by
    /// the seed: some runs got worse, more colourful images); guidance doubles the cost of every sample in sampling
    /// and training, so without it an epoch holds twice as many samples for the same time. The whole epoch is one
    /// optimizer step (on one process: 6 batches of 16, 24 accumulation steps of 4), so that step sees importance
    /// ratios of exactly 1 and none of its samples is clipped away: with one step per 4 samples, about 40% of the
    /// ratios fell outside clip_range 1e-4 after the first step, and the curve depended on the machine's rounding.
    /// Each epoch draws 24 prompts and samples each 4 times, and the advantages are relative to the prompt's own
    /// 4 images (per-prompt stat tracking with a buffer of one group): 87% of the JPEG-size variance of the
    /// built-in model's samples lies between prompts (a tiger is harder to compress than a frog), which the
    /// policy cannot change and which, normalised globally, drowned the signal.
    /// <c>ddpo train</c> adds it after the preset whenever the model is the built-in one
    /// (e.g. <c>compressibility+builtin</c>).
    /// </summary>
    private const string BuiltinCpu = """
        num_epochs = 12
        save_freq = 4
        watch_rewards = "image_contrast,colorfulness"
        model = "builtin"

        [pretrained]
        dtype = "fp32"

        [sample]
        num_steps = 10
        guidance_scale = 1.0
        samples_per_epoch = 96
        batch_size = 16
        group_size = 4

        [train]
        cfg = false
        total_batch_size = 96
        batch_size = 4
        learning_rate = 5e-3
        timestep_fraction = 0.5

        [lora]
        rank = 8
        alpha = 8

        [per_prompt_stat_tracking]
        enabled = true
        buffer_size = 4
        min_count = 4

        [logging]
        image_every = 3
        num_eval_images = 8
        """;

    /// <summary>
    /// GRPO over a paper task (<c>compressibility-grpo</c>, <c>incompressibility-grpo</c>, <c>aesthetic-grpo</c>): the
    /// algorithm's values from Flow-GRPO's published configs (yifan123/flow_grpo, <c>config/grpo.py</c> and
    /// <c>config/base.py</c>) where they apply to DDIM on Stable Diffusion 1.x; the model's own values (50 DDIM steps,
    /// eta 1, guidance 5) stay the DDPO preset's, because Flow-GRPO's 10 training steps, noise_level 0.7 and guidance
    /// 4.5 belong to SD3.5's flow-matching SDE. Departures: the group std is the group's own (Flow-GRPO's SD3.5 configs
    /// use <c>global_std = True</c>, the std of the whole batch); every step is trained (their timestep_fraction 0.99
    /// leaves out the last of 10 flow steps, which has no counterpart here); no EMA of the weights.
    /// </summary>
    private const string Grpo = """
        algorithm = "grpo"

        [sample]
        samples_per_epoch = 256 # Flow-GRPO *_sd3_4gpu: 4 GPUs x train_batch_size 8 x num_batches_per_epoch 8 = 16 prompts x 16 images
        group_size = 16 # Flow-GRPO *_sd3_4gpu: num_image_per_prompt = 16 (24 on their 32-GPU runs)
        batch_size = 8

        [train]
        total_batch_size = 128 # Flow-GRPO: gradient_accumulation_steps = num_batches_per_epoch // 2, two optimizer steps per epoch
        batch_size = 4
        kl_coef = 0.04 # Flow-GRPO train.beta of its GenEval and OCR runs (0.01 for PickScore)
        learning_rate = 3e-4 # Flow-GRPO base.py (LoRA), the same as DDPO's
        clip_range = 1e-4 # Flow-GRPO base.py train.clip_range
        adv_clip_max = 5.0 # Flow-GRPO base.py train.adv_clip_max
        num_inner_epochs = 1 # Flow-GRPO config/grpo.py
        """;

    /// <summary>
    /// Stable Diffusion 3.5 (medium) sampled and trained as Flow-GRPO does it (yifan123/flow_grpo <c>config/base.py</c>,
    /// <c>config/grpo.py</c> <c>pickscore_sd3</c> / <c>geneval_sd3</c>, <c>scripts/train_sd3.py</c>): the model-side
    /// values, for every algorithm. Departures: one step count for training and evaluation (Flow-GRPO evaluates with
    /// <c>eval_num_steps = 40</c>); no EMA of the weights.
    /// </summary>
    private const string Sd35 = """
        [sample]
        num_steps = 10 # grpo.py *_sd3: sample.num_steps
        eta = 0.7 # base.py sample.noise_level (Flow-SDE)
        sde_type = "flow_sde" # Flow-GRPO's sde_step_with_logprob
        guidance_scale = 4.5 # grpo.py *_sd3: sample.guidance_scale
        resolution = 512 # grpo.py *_sd3: config.resolution
        max_sequence_length = 128 # train_sd3.py: compute_text_embeddings(..., max_sequence_length=128)

        [train]
        cfg = true # base.py train.cfg
        timestep_fraction = 0.99 # grpo.py *_sd3: train.timestep_fraction

        [lora]
        rank = 32 # train_sd3.py: LoraConfig(r=32, lora_alpha=64, init_lora_weights="gaussian")
        alpha = 64
        init = "gaussian"
        """;

    /// <summary>
    /// Flow-GRPO's GRPO sizes for SD3.5 on its 32 GPUs (<c>config/grpo.py</c> <c>geneval_sd3</c>/<c>pickscore_sd3</c>):
    /// 48 prompts x 24 images per epoch, two optimizer steps per epoch. Departure: the group's own std (their
    /// <c>global_std = True</c> uses the whole batch's).
    /// </summary>
    private const string FlowGrpoSd35 = """
        algorithm = "grpo"

        [sample]
        samples_per_epoch = 1152 # 32 GPUs x train_batch_size 9 x num_batches_per_epoch int(48 / (32 x 9 / 24)) = 4
        group_size = 24 # sample.num_image_per_prompt
        batch_size = 9 # sample.train_batch_size

        [train]
        total_batch_size = 576 # train.batch_size 9 x gradient_accumulation_steps (num_batches_per_epoch // 2 = 2) x 32 GPUs
        batch_size = 9
        kl_coef = 0.04 # train.beta of geneval_sd3 / general_ocr_sd3 (0.01 pickscore_sd3)
        learning_rate = 3e-4 # base.py train.learning_rate
        clip_range = 1e-4 # base.py train.clip_range
        adv_clip_max = 5.0 # base.py train.adv_clip_max
        num_inner_epochs = 1
        """;

    /// <summary>
    /// DiffusionNFT's SD3.5 run (NVlabs/DiffusionNFT <c>config/nft.py</c> <c>_get_config</c> and <c>sd3_pickscore</c>,
    /// <c>scripts/train_nft_sd3.py</c>, at 24af555) over the SD3.5 layer: CFG-free ODE rollouts, 48 prompts x 24 images on
    /// 8 GPUs, one optimizer step per epoch, beta 1, decay_type 1, KL 1e-4, the EMA every step. Departure: Euler's ODE
    /// instead of its <c>dpm2</c> solver.
    /// </summary>
    private const string DiffusionNftSd35 = """
        algorithm = "nft"

        [sample]
        eta = 0.0 # sample.deterministic = True: the ODE (its solver "dpm2"; here Euler)
        guidance_scale = 1.0 # _get_config: sample.guidance_scale = 1.0 (CFG-free)
        samples_per_epoch = 1152 # 8 GPUs x train_batch_size 9 x num_batches_per_epoch 16 = 48 groups x 24
        group_size = 24 # sample.num_image_per_prompt
        batch_size = 9 # sample.train_batch_size

        [train]
        cfg = false
        total_batch_size = 1152 # train.batch_size 9 x gradient_accumulation_steps 16 x 8 GPUs (gradient_step_per_epoch = 1)
        batch_size = 9
        kl_coef = 0.0 # NFT's KL is nft.kl_coef
        learning_rate = 3e-4 # base.py train.learning_rate
        adv_clip_max = 5.0 # base.py train.adv_clip_max
        ema = true # base.py train.ema
        ema_decay = 0.9 # train_nft_sd3.py: EMAModuleWrapper(decay=0.9, update_step_interval=1)
        ema_update_interval = 1

        [nft]
        beta = 1.0 # config.beta
        decay_type = 1 # config.decay_type
        kl_coef = 1e-4 # train.beta
        timestep_distribution = "schedule" # the sampling timesteps, shuffled per sample
        """;

    /// <summary>
    /// FLUX.1-dev sampled and trained as DanceGRPO does it (XueZeyue/DanceGRPO
    /// <c>scripts/finetune/finetune_flux_grpo_8gpus.sh</c>, <c>fastvideo/train_grpo_flux.py</c>): the model-side values
    /// and its GRPO sizes. Departures: FLUX's own dynamically shifted sigmas (DanceGRPO's script shifts with a static
    /// <c>--shift 3</c>); LoRA
    /// instead of full fine-tuning (DanceGRPO trains all 12 B parameters with FSDP on 8 GPUs).
    /// </summary>
    private const string DanceGrpoFlux = """
        algorithm = "grpo"

        [sample]
        num_steps = 16 # --sampling_steps 16
        eta = 0.3 # --eta 0.3 (Dance-SDE's constant noise level)
        sde_type = "dance_sde" # DanceGRPO's flux_step
        init_same_noise = true # --init_same_noise: one x_T per group
        guidance_scale = 3.5 # FLUX.1-dev's guidance embedding (--cfg 0.0: no classifier-free pass)
        resolution = 720 # --h 720 --w 720
        max_sequence_length = 512 # FluxPipeline's default
        samples_per_epoch = 192 # 8 GPUs x --train_batch_size 2 prompts x --num_generations 12
        group_size = 12 # --num_generations 12 (--use_group)
        batch_size = 2

        [train]
        cfg = false # --cfg 0.0
        timestep_fraction = 0.6 # --timestep_fraction 0.6
        batch_size = 2
        total_batch_size = 192 # one optimizer step per epoch (--gradient_accumulation_steps 12 over the 8 GPUs' samples)
        learning_rate = 1e-5 # --learning_rate 1e-5
        adam_weight_decay = 1e-4 # --weight_decay 0.0001
        max_grad_norm = 1.0 # --max_grad_norm 1.0
        clip_range = 1e-4 # --clip_range 1e-4
        adv_clip_max = 5.0 # --adv_clip_max 5.0
        kl_coef = 0.0 # no KL term in train_grpo_flux.py
        num_inner_epochs = 1
        """;

    /// <summary>
    /// FLUX.1-dev with MixGRPO (tulvgengenr/MixGRPO <c>scripts/finetune/finetune_flux_grpo_MixGRPO.sh</c> at 33d8f56,
    /// <c>fastvideo/train_grpo_flux.py</c>): Flow-GRPO's SDE (<c>--flow_grpo_sampling</c>, eta 0.7) on a window of 4 of
    /// the 25 steps (<c>group_size=4</c>), ODE steps elsewhere, the window moving 1 step (<c>prog_overlap_step=1</c>)
    /// every 25 iterations (<c>iters_per_group=25</c>), only the window's steps trained (<c>training_strategy="part"</c>),
    /// groups of 12, one optimizer step per 3 samples per GPU on 32 GPUs. Departures: the window stops at the last
    /// steps where MixGRPO's rolls back to the start (<c>--roll_back</c>); FLUX's own dynamic shift (MixGRPO:
    /// <c>--shift 3</c>); LoRA instead
    /// of MixGRPO's full fine-tuning.
    /// </summary>
    private const string MixGrpoFlux = """
        algorithm = "grpo"

        [sample]
        num_steps = 25 # sampling_steps=25
        eta = 0.7 # eta=0.7
        sde_type = "flow_sde" # --flow_grpo_sampling
        init_same_noise = true # --init_same_noise
        sde_window = [0, 4] # group_size=4 (the SDE window), starting at cur_timestep 0
        sde_window_shift = 1 # --prog_overlap_step 1
        sde_window_shift_every = 25 # iters_per_group=25
        guidance_scale = 3.5 # FLUX.1-dev's guidance embedding (--cfg 0.0)
        resolution = 720 # --h 720 --w 720
        max_sequence_length = 512
        samples_per_epoch = 384 # 32 GPUs (4 nodes x 8) x --train_batch_size 1 prompt x --num_generations 12
        group_size = 12 # --num_generations 12 (--use_group)
        batch_size = 1

        [train]
        cfg = false
        timestep_fraction = 1.0 # every step of the window (training_strategy="part")
        batch_size = 1
        total_batch_size = 96 # gradient_accumulation_steps=3 samples x 32 GPUs per optimizer step (4 per epoch)
        learning_rate = 1e-5 # --learning_rate 1e-5
        adam_weight_decay = 1e-4 # --weight_decay 0.0001
        max_grad_norm = 1.0
        clip_range = 1e-4 # --clip_range 1e-4
        adv_clip_max = 5.0 # --adv_clip_max 5.0
        kl_coef = 0.0 # kl_coeff=0.0
        num_inner_epochs = 1
        """;

    /// <summary>
    /// Flow-GRPO's reward tasks on SD3.5 (yifan123/flow_grpo <c>config/grpo.py</c> at ac4c86e: <c>pickscore_sd3</c>,
    /// <c>geneval_sd3</c>, <c>general_ocr_sd3</c>), over <see cref="Sd35"/> and <see cref="FlowGrpoSd35"/>. Flow-GRPO reads
    /// its prompts from <c>config.dataset</c> (<c>dataset/pickscore</c>, <c>dataset/geneval</c>, <c>dataset/ocr</c> of
    /// its repository): the presets name those files relative to the working directory, so a run started in a
    /// checkout of flow_grpo (or with its <c>dataset</c> folder copied or linked next to it) trains on the same prompts;
    /// elsewhere <c>--set prompt_fn=file:PATH</c> names the file (README, "Presets for the reward tasks").
    /// <c>pickscore</c> and <c>hpsv2</c> are the names the CLIP rewards register under (branch clipr).
    /// </summary>
    private const string Sd35PickScore = """
        prompt_fn = "file:dataset/pickscore/train.txt" # pickscore_sd3: dataset/pickscore, prompt_fn "general_ocr" (one prompt a line)
        reward_fn = "pickscore" # pickscore_sd3: reward_fn = {"pickscore": 1.0}

        [train]
        kl_coef = 0.01 # pickscore_sd3: train.beta = 0.01
        """;

    private const string Sd35Geneval = """
        prompt_fn = "file:dataset/geneval/train_metadata.jsonl" # geneval_sd3: dataset/geneval, prompt_fn "geneval" (a GenEval record a line)
        reward_fn = "geneval" # geneval_sd3: reward_fn = {"geneval": 1.0}; the detector server is reward.geneval.base_url

        [train]
        kl_coef = 0.04 # geneval_sd3: train.beta = 0.04
        """;

    private const string Sd35Ocr = """
        prompt_fn = "file:dataset/ocr/train.txt" # general_ocr_sd3: dataset/ocr, prompt_fn "general_ocr" (the text to render in quotes)
        reward_fn = "ocr" # general_ocr_sd3: reward_fn = {"ocr": 1.0}; the OCR server is reward.ocr.base_url

        [train]
        kl_coef = 0.04 # general_ocr_sd3: train.beta = 0.04
        """;

    /// <summary>
    /// ImageReward on SD3.5: Flow-GRPO's <c>flow_grpo/rewards.py</c> (ac4c86e) has <c>imagereward_score</c> but
    /// <c>config/grpo.py</c> no SD3.5 config for it, so this is <c>pickscore_sd3</c>'s task (its prompts and
    /// beta 0.01, the other human-preference reward) with ImageReward as the reward.
    /// </summary>
    private const string Sd35ImageReward = $"""
        prompt_fn = "file:dataset/pickscore/train.txt" # as pickscore_sd3
        reward_fn = "{RewardNames.ImageReward}" # rewards.py imagereward_score (ImageReward-v1.0)

        [train]
        kl_coef = 0.01 # as pickscore_sd3: train.beta = 0.01
        """;

    /// <summary>
    /// DanceGRPO's FLUX run (XueZeyue/DanceGRPO <c>scripts/finetune/finetune_flux_grpo_8gpus.sh</c>: <c>--use_hpsv2</c>)
    /// over <see cref="DanceGrpoFlux"/>. DanceGRPO embeds its prompts beforehand
    /// (<c>scripts/preprocess/preprocess_flux_rl_embeddings.sh</c>, <c>--prompt_dir ./prompts.txt</c>: one prompt a
    /// line); here the same file is read as is.
    /// </summary>
    private const string FluxHpsv2 = """
        prompt_fn = "file:prompts.txt" # DanceGRPO preprocess_flux_rl_embeddings.sh: --prompt_dir ./prompts.txt
        reward_fn = "hpsv2" # --use_hpsv2 (HPSv2.1)
        """;

    /// <summary>
    /// MixGRPO's multi-reward run (tulvgengenr/MixGRPO <c>scripts/finetune/finetune_flux_grpo_MixGRPO.sh</c> at
    /// 33d8f56: <c>reward_model="multi_reward"</c>, HPSv2.1, ImageReward and PickScore with weight 1 each,
    /// <c>--multi_reward_mix advantage_aggr</c>) over <see cref="MixGrpoFlux"/>: each reward normalised within its
    /// group, the advantages summed. Prompts as DanceGRPO's (<c>scripts/preprocess/preprocess_flux_rl_embeddings.sh</c>:
    /// <c>--prompt_path ./data/prompts.txt</c>).
    /// </summary>
    private const string FluxMixGrpoMultiReward = $"""
        prompt_fn = "file:data/prompts.txt" # MixGRPO preprocess_flux_rl_embeddings.sh: --prompt_path ./data/prompts.txt
        reward_fn = "{RewardNames.Weighted}"
        rewards = {"{"} hpsv2 = 1.0, {RewardNames.ImageReward} = 1.0, pickscore = 1.0 {"}"} # hps, image_reward, pick_score: weight 1 each
        reward_mix = "{DdpoConfig.AdvantageAggregation}" # --multi_reward_mix advantage_aggr
        """;

    /// <summary>The name of the layer that sizes a task for the built-in model.</summary>
    public const string BuiltinLayer = "builtin";

    private static readonly Dictionary<string, string[]> Layers = new()
    {
        [BuiltinLayer] = [BuiltinCpu], // applied by ApplyOne with the prompt set chosen there
        ["compressibility"] = [Compressibility],
        ["incompressibility"] = [Compressibility, $"""
            reward_fn = "{RewardNames.JpegIncompressibility}"
            """],
        ["aesthetic"] = [Compressibility, $"""
            num_epochs = 200
            reward_fn = "{RewardNames.AestheticScore}"
            prompt_fn = "simple_animals"

            [train]
            total_batch_size = 128 # dgx.py: 8 GPUs x batch_size 4 x gradient_accumulation_steps 4 (2 steps per epoch)

            [per_prompt_stat_tracking]
            buffer_size = 32
            min_count = 16
            """],
        ["compressibility-grpo"] = [Compressibility, Grpo],
        ["incompressibility-grpo"] = [Compressibility, $"""
            reward_fn = "{RewardNames.JpegIncompressibility}"
            """, Grpo],
        ["aesthetic-grpo"] = [Compressibility, $"""
            num_epochs = 200
            reward_fn = "{RewardNames.AestheticScore}"
            prompt_fn = "simple_animals"
            """, Grpo],
        ["sd3.5-compressibility"] = [Compressibility, Sd35],
        ["sd3.5-aesthetic"] = [Compressibility, $"""
            num_epochs = 200
            reward_fn = "{RewardNames.AestheticScore}"
            prompt_fn = "simple_animals"
            """, Sd35],
        ["sd3.5-compressibility-grpo"] = [Compressibility, Sd35, FlowGrpoSd35],
        ["sd3.5-incompressibility-grpo"] = [Compressibility, $"""
            reward_fn = "{RewardNames.JpegIncompressibility}"
            """, Sd35, FlowGrpoSd35],
        ["sd3.5-aesthetic-grpo"] = [Compressibility, $"""
            num_epochs = 200
            reward_fn = "{RewardNames.AestheticScore}"
            prompt_fn = "simple_animals"
            """, Sd35, FlowGrpoSd35],
        ["sd3.5-compressibility-nft"] = [Compressibility, Sd35, DiffusionNftSd35],
        ["sd3.5-aesthetic-nft"] = [Compressibility, $"""
            num_epochs = 200
            reward_fn = "{RewardNames.AestheticScore}"
            prompt_fn = "simple_animals"
            """, Sd35, DiffusionNftSd35],
        ["flux-compressibility-grpo"] = [Compressibility, DanceGrpoFlux],
        ["flux-aesthetic-grpo"] = [Compressibility, $"""
            num_epochs = 200
            reward_fn = "{RewardNames.AestheticScore}"
            prompt_fn = "simple_animals"
            """, DanceGrpoFlux],
        ["flux-compressibility-mixgrpo"] = [Compressibility, MixGrpoFlux],
        ["sd3.5-pickscore"] = [Compressibility, Sd35, FlowGrpoSd35, Sd35PickScore],
        ["sd3.5-geneval"] = [Compressibility, Sd35, FlowGrpoSd35, Sd35Geneval],
        ["sd3.5-ocr"] = [Compressibility, Sd35, FlowGrpoSd35, Sd35Ocr],
        ["sd3.5-imagereward"] = [Compressibility, Sd35, FlowGrpoSd35, Sd35ImageReward],
        ["flux-hpsv2"] = [Compressibility, DanceGrpoFlux, FluxHpsv2],
        ["flux-mixgrpo-multireward"] = [Compressibility, MixGrpoFlux, FluxMixGrpoMultiReward],
        ["prompt_image_alignment"] = [Compressibility, $"""
            num_epochs = 200
            prompt_fn = "nouns_activities"
            prompt_fn_kwargs = {"{"} nouns_file = "simple_animals.txt", activities_file = "activities.txt" {"}"}
            reward_fn = "{RewardNames.PromptImageAlignment}"

            [sample]
            samples_per_epoch = 288 # dgx.py: 6 GPUs (2 more served LLaVA) x batch_size 8 x num_batches_per_epoch 6
            batch_size = 8

            [train]
            total_batch_size = 144 # dgx.py: 6 GPUs x batch_size 4 x gradient_accumulation_steps 6 (2 steps per epoch)
            batch_size = 4

            [per_prompt_stat_tracking]
            buffer_size = 32
            min_count = 16
            """],
    };

    /// <summary>The preset names.</summary>
    public static IReadOnlyList<string> Names { get; } = Layers.Keys.ToArray();

    /// <summary>The preset as TOML (its layers in order), as applied over the defaults.</summary>
    public static IReadOnlyList<string> Toml(string name) =>
        Layers.TryGetValue(name, out var layers)
            ? layers
            : throw new ConfigException($"--preset: unknown preset '{name}' (expected one of {string.Join(", ", Names)})");

    /// <summary>
    /// Applies a preset to <paramref name="config"/>; <c>a+b</c> applies preset a, then b. An unknown
    /// name is a <see cref="ConfigException"/>.
    /// </summary>
    public static void Apply(DdpoConfig config, string name)
    {
        foreach (var part in name.Split('+', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            ApplyOne(config, part);
        }
    }

    private static void ApplyOne(DdpoConfig config, string name)
    {
        if (name == BuiltinLayer)
        {
            // The built-in model knows "a(n) animal" and "a(n) animal activity": keep the task's kind of
            // prompt, holding some animals (and an activity) out of training for `ddpo eval --prompts held-out`.
            var prompts = config.PromptFn.StartsWith("nouns_activities", StringComparison.Ordinal) ? "nouns_activities_train" : "animals_train";
            ApplyToml(config, name, $"prompt_fn = \"{prompts}\"\nprompt_fn_kwargs = {{}}\n" + BuiltinCpu);
            return;
        }
        foreach (var toml in Toml(name))
        {
            ApplyToml(config, name, toml);
        }
    }

    private static void ApplyToml(DdpoConfig config, string name, string toml)
    {
        var origin = $"preset '{name}'";
        var layer = new ConfigLayer(config, origin);
        layer.ApplyTree(ConfigValues.ParseToml(toml, origin));
        layer.Finish();
    }
}
