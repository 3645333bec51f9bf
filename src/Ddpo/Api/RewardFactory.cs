using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Models.Loading;
using Ddpo.Rewards.Aesthetic;
using Ddpo.Rewards.Alignment;
using Ddpo.Rewards.ImageReward;
using Ddpo.Rewards.Ocr;
using Ddpo.Rewards.Learned;
using Ddpo.Rewards.Remote;
using Ddpo.Rewards;
using Ddpo.Runtime;
using Ddpo.Text;
using static TorchSharp.torch;

namespace Ddpo;

/// <summary>
/// The rewards built from a config, in the front door so that the config layer stays plain settings: the learned and
/// remote rewards, from a config's <c>[reward.*]</c> sections:
/// <c>aesthetic_score</c>, <c>imagereward</c>, <c>pickscore</c>, <c>clipscore</c>, <c>hpsv2</c>, <c>prompt_image_alignment</c>,
/// <c>vlm_strict_satisfaction</c>, <c>remote</c>, <c>ocr</c>, <c>geneval</c> and <c>vlm_score</c>.
/// Models are loaded and settings checked when a reward is created, so only the rewards a run uses need
/// their settings; a missing one is a <see cref="ConfigException"/> naming the key.
/// </summary>
internal static class RewardFactory
{
    /// <summary>
    /// Adds the factories to <paramref name="registry"/>. <paramref name="log"/> receives retry and
    /// dropped-sample messages; the models run on <c>device</c> (<c>auto</c>: CUDA when available).
    /// </summary>
    public static RewardRegistry RegisterAll(RewardRegistry registry, DdpoConfig config, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(config);
        var r = config.Reward;
        registry.Register(RewardNames.AestheticScore, () => CreateAesthetic(config));
        registry.Register(RewardNames.ImageReward, () => CreateImageReward(config));
        registry.Register(RewardNames.PickScore, () => CreatePickScore(config));
        registry.Register(RewardNames.ClipScore, () => CreateClipScore(config));
        registry.Register(RewardNames.Hpsv2, () => CreateHpsv2(config));
        registry.Register(RewardNames.PromptImageAlignment, () =>
        {
            var scorer = CreateBertScorer(r.BertScore, Device(config));
            try
            {
                return new PromptImageAlignmentReward(CreateVlm(r.Vlm, log), scorer, r.Vlm.Question,
                    RewardImageEncoding.Parse(r.Vlm.ImageFormat, "reward.vlm.image_format"), log);
            }
            catch
            {
                scorer.Dispose();
                throw;
            }
        });
        registry.Register(RewardNames.VlmStrictSatisfaction, () =>
            new StrictSatisfactionReward(CreateVlm(r.Vlm, log), RewardImageEncoding.Parse(r.Vlm.ImageFormat, "reward.vlm.image_format"), log));
        registry.Register(RewardNames.Remote, () => new RemoteReward(new RemoteRewardOptions(
            r.Server.BaseUrl, r.Server.BatchSize, RewardImageEncoding.Parse(r.Server.ImageFormat, "reward.server.image_format"),
            HttpRetryOptions.FromSeconds(r.Server.TimeoutS, r.Server.MaxRetries, r.Server.BackoffS)), log: log));
        registry.Register(RewardNames.Ocr, () => new OcrReward(new OcrRewardOptions(
            r.Ocr.BaseUrl, r.Ocr.BatchSize, RewardImageEncoding.Parse(r.Ocr.ImageFormat, "reward.ocr.image_format"),
            HttpRetryOptions.FromSeconds(r.Ocr.TimeoutS, r.Ocr.MaxRetries, r.Ocr.BackoffS)), log: log));
        registry.Register(RewardNames.Geneval, () => new GenevalReward(new GenevalRewardOptions(
            r.Geneval.BaseUrl, r.Geneval.BatchSize, r.Geneval.OnlyStrict,
            HttpRetryOptions.FromSeconds(r.Geneval.TimeoutS, r.Geneval.MaxRetries, r.Geneval.BackoffS)), log: log));
        registry.Register(RewardNames.VlmScore, () =>
        {
            if (!VlmScoreScale.TryParse(r.VlmScore.Scale, out var scale))
            {
                throw new ConfigException($"reward.vlm_score.scale: must be 1-5 or 0-10, got '{r.VlmScore.Scale}'");
            }
            return new VlmScoreReward(CreateVlm(r.Vlm, log, r.VlmScore.MaxTokens), r.VlmScore.Template, scale,
                RewardImageEncoding.Parse(r.Vlm.ImageFormat, "reward.vlm.image_format"), log);
        });
        return registry;
    }

    /// <summary>A registry with the built-in rewards and those of <see cref="RegisterAll"/>.</summary>
    public static RewardRegistry CreateRegistry(DdpoConfig config, Action<string>? log = null) => RegisterAll(new RewardRegistry(), config, log);

    /// <summary>
    /// The reward a training run optimises (<c>reward_fn</c>, or the weighted <c>rewards</c>), wrapped so
    /// that the <c>watch_rewards</c> are computed on the same images and logged; dispose it after the run.
    /// </summary>
    public static IRewardFunction CreateForTraining(DdpoConfig config, Action<string>? log = null)
    {
        var registry = CreateRegistry(config, log);
        var optimised = registry.Create(config.RewardFn, config.Rewards);
        var watches = config.WatchRewardNames.Select(registry.Create).ToList();
        return watches.Count == 0 ? optimised : new WatchedReward(optimised, watches);
    }

    private static Device Device(DdpoConfig config) => TorchRuntime.ResolveDevice(config.Device);

    private static AestheticReward CreateAesthetic(DdpoConfig config)
    {
        var a = config.Reward.Aesthetic;
        if (string.IsNullOrWhiteSpace(a.ClipModel))
        {
            throw new ConfigException($"reward.aesthetic.clip_model: {RewardNames.AestheticScore} needs a CLIP ViT-L/14 folder in transformers format " +
                "(e.g. openai/clip-vit-large-patch14 with model.safetensors): --set reward.aesthetic.clip_model=PATH");
        }
        if (string.IsNullOrWhiteSpace(a.Head))
        {
            throw new ConfigException($"reward.aesthetic.head: {RewardNames.AestheticScore} needs the LAION aesthetic head as safetensors " +
                "(sac+logos+ava1-l14-linearMSE converted): --set reward.aesthetic.head=PATH");
        }
        return new AestheticReward(AestheticScorer.Load(a.ClipModel, a.Head, Device(config), a.BatchSize));
    }

    private static ImageRewardReward CreateImageReward(DdpoConfig config)
    {
        var ir = config.Reward.ImageReward;
        if (string.IsNullOrWhiteSpace(ir.Model))
        {
            throw new ConfigException($"reward.imagereward.model: {RewardNames.ImageReward} needs the ImageReward model: a folder with ImageReward.pt " +
                "(or model.safetensors) and med_config.json from THUDM/ImageReward, or the ImageReward.pt file: --set reward.imagereward.model=PATH");
        }
        if (!Directory.Exists(ir.Model) && !File.Exists(ir.Model))
        {
            throw new ConfigException($"reward.imagereward.model: '{ir.Model}' does not exist (expected a folder with ImageReward.pt or model.safetensors, or the weight file)");
        }
        var tokenizer = string.IsNullOrWhiteSpace(ir.Processor)
            ? (Directory.Exists(ir.Model) ? ir.Model : Path.GetDirectoryName(Path.GetFullPath(ir.Model))!)
            : ir.Processor;
        if (!File.Exists(Path.Combine(tokenizer, "vocab.txt")))
        {
            var key = string.IsNullOrWhiteSpace(ir.Processor) ? "reward.imagereward.processor (unset, so the model folder was tried)" : "reward.imagereward.processor";
            throw new ConfigException($"{key}: no vocab.txt in '{tokenizer}'; {RewardNames.ImageReward} needs the bert-base-uncased tokenizer folder: " +
                "--set reward.imagereward.processor=PATH");
        }
        return new ImageRewardReward(ImageRewardScorer.Load(ir.Model, tokenizer, Device(config), ir.BatchSize));
    }

    private static ClipModelReward CreatePickScore(DdpoConfig config)
    {
        var p = config.Reward.PickScore;
        RequireFolder(p.Model, "reward.pickscore.model", RewardNames.PickScore,
            "the PickScore_v1 CLIPModel folder in transformers format (yuvalkirstain/PickScore_v1: config.json + model.safetensors)");
        var processor = string.IsNullOrWhiteSpace(p.Processor) ? p.Model : p.Processor;
        RequireFolder(processor, "reward.pickscore.processor", RewardNames.PickScore,
            "the CLIPProcessor folder Flow-GRPO uses (laion/CLIP-ViT-H-14-laion2B-s32B-b79K: preprocessor_config.json, vocab.json, merges.txt)");
        var device = Device(config);
        return ClipModelReward.LoadPickScore(p.Model, processor, device, RewardDType(config, device), p.BatchSize);
    }

    private static ClipModelReward CreateClipScore(DdpoConfig config)
    {
        var c = config.Reward.ClipScore;
        RequireFolder(c.Model, "reward.clipscore.model", RewardNames.ClipScore,
            "a CLIPModel folder in transformers format (openai/clip-vit-large-patch14: config.json + model.safetensors)");
        var processor = string.IsNullOrWhiteSpace(c.Processor) ? c.Model : c.Processor;
        RequireFolder(processor, "reward.clipscore.processor", RewardNames.ClipScore,
            "its CLIPProcessor files (preprocessor_config.json, vocab.json, merges.txt; openai/clip-vit-large-patch14 has them beside the model)");
        var device = Device(config);
        return ClipModelReward.LoadClipScore(c.Model, processor, device, RewardDType(config, device), c.BatchSize);
    }

    private static Hpsv2Reward CreateHpsv2(DdpoConfig config)
    {
        var h = config.Reward.Hpsv2;
        RequireFolder(h.Model, "reward.hpsv2.model", RewardNames.Hpsv2,
            "a folder with the open_clip model config (ViT-H-14.json) and HPSv2.1's weights (HPS_v2.1_compressed.pt or a safetensors conversion)");
        var tokenizer = string.IsNullOrWhiteSpace(h.Processor) ? h.Model : h.Processor;
        var (cfg, weights, merges) = Hpsv2Reward.FindFiles(h.Model, tokenizer);
        var device = Device(config);
        return Hpsv2Reward.Load(cfg, weights, merges, device, RewardDType(config, device), h.BatchSize);
    }

    // The frozen models' dtype ([pretrained] dtype): the policy's, so a reward on the same device costs no more than it.
    private static ScalarType RewardDType(DdpoConfig config, Device device) => TorchRuntime.ResolveDType(config.Pretrained.Dtype, device);

    private static void RequireFolder(string path, string key, string reward, string expected)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ConfigException($"{key}: {reward} needs {expected}: --set {key}=PATH");
        if (!Directory.Exists(path)) throw new ConfigException($"{key}: folder '{path}' not found ({reward} needs {expected})");
    }

    /// <summary>The BERTScore scorer a config asks for: the folder in <c>reward.bertscore.model</c>, or the built-in all-MiniLM-L6-v2.</summary>
    public static BertScorer CreateBertScorer(BertScoreRewardConfig b, Device? device = null)
    {
        bool builtin = string.IsNullOrWhiteSpace(b.Model);
        int? layers = b.NumLayers < 0 ? null : b.NumLayers;
        BertScoreBaseline? baseline = null;
        if (!string.IsNullOrWhiteSpace(b.Baseline))
        {
            int resolved = layers ?? (builtin ? BertConfig.MiniLmL6 : BertConfig.Load(Path.Combine(b.Model, "config.json"))).NumHiddenLayers;
            baseline = BertScoreBaseline.Load(b.Baseline, resolved);
        }
        var options = new BertScoreOptions { NumLayers = layers, Idf = b.Idf, Baseline = baseline };
        return builtin ? BertScorer.CreateDefault(options, device) : BertScorer.FromPretrained(b.Model, options, device);
    }

    private static OpenAiVisionClient CreateVlm(VlmRewardConfig v, Action<string>? log, int? maxTokens = null)
    {
        var key = string.IsNullOrEmpty(v.ApiKeyEnv) ? null : Environment.GetEnvironmentVariable(v.ApiKeyEnv);
        return new OpenAiVisionClient(new OpenAiVisionOptions(v.BaseUrl, v.Model, key, maxTokens ?? v.MaxTokens, v.Temperature, v.MaxConcurrency,
            HttpRetryOptions.FromSeconds(v.TimeoutS, v.MaxRetries, v.BackoffS)), log: log);
    }
}
