using Ddpo.Rewards;
using Ddpo.Rewards.Alignment;

namespace Ddpo.Config;

/// <summary>The keys of the <c>[reward.*]</c> sections (see <see cref="RewardConfig"/>), added to <see cref="ConfigSchema.Keys"/>.</summary>
internal static class RewardKeys
{
    public static void Add(List<ConfigKey> keys)
    {
        void Int(string path, Func<RewardConfig, int> get, Action<RewardConfig, int> set, int min) =>
            keys.Add(new ConfigKey(path, ConfigValueKind.Integer, c => get(c.Reward), (c, v) => set(c.Reward, (int)v),
                v => (int)v >= min ? null : $"must be >= {min}, got {(int)v}"));

        void Float(string path, Func<RewardConfig, double> get, Action<RewardConfig, double> set, double min, bool exclusive) =>
            keys.Add(new ConfigKey(path, ConfigValueKind.Float, c => get(c.Reward), (c, v) => set(c.Reward, (double)v), v =>
            {
                var d = (double)v;
                if (!double.IsFinite(d)) return $"must be a finite number, got {ConfigSchema.Fmt(d)}";
                return exclusive ? (d > min ? null : $"must be > {ConfigSchema.Fmt(min)}, got {ConfigSchema.Fmt(d)}")
                    : (d >= min ? null : $"must be >= {ConfigSchema.Fmt(min)}, got {ConfigSchema.Fmt(d)}");
            }));

        void Bool(string path, Func<RewardConfig, bool> get, Action<RewardConfig, bool> set) =>
            keys.Add(new ConfigKey(path, ConfigValueKind.Boolean, c => get(c.Reward), (c, v) => set(c.Reward, (bool)v), _ => null));

        void Str(string path, Func<RewardConfig, string> get, Action<RewardConfig, string> set, Func<string, string?>? check = null) =>
            keys.Add(new ConfigKey(path, ConfigValueKind.String, c => get(c.Reward), (c, v) => set(c.Reward, (string)v),
                v => check?.Invoke((string)v)));

        static string? HttpUrl(string v) =>
            Uri.TryCreate(v, UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttp || u.Scheme == Uri.UriSchemeHttps)
                ? null : $"must be an http:// or https:// URL, got '{v}'";
        static string? ImageFormat(string v) => v is "png" or "jpeg" ? null : $"must be png or jpeg, got '{v}'";

        // [reward.aesthetic]
        Str("reward.aesthetic.clip_model", r => r.Aesthetic.ClipModel, (r, v) => r.Aesthetic.ClipModel = v);
        Str("reward.aesthetic.head", r => r.Aesthetic.Head, (r, v) => r.Aesthetic.Head = v);
        Int("reward.aesthetic.batch_size", r => r.Aesthetic.BatchSize, (r, v) => r.Aesthetic.BatchSize = v, 1);

        // [reward.imagereward]
        Str("reward.imagereward.model", r => r.ImageReward.Model, (r, v) => r.ImageReward.Model = v);
        Str("reward.imagereward.processor", r => r.ImageReward.Processor, (r, v) => r.ImageReward.Processor = v);
        Int("reward.imagereward.batch_size", r => r.ImageReward.BatchSize, (r, v) => r.ImageReward.BatchSize = v, 1);
        // [reward.pickscore], [reward.clipscore], [reward.hpsv2]
        Str("reward.pickscore.model", r => r.PickScore.Model, (r, v) => r.PickScore.Model = v);
        Str("reward.pickscore.processor", r => r.PickScore.Processor, (r, v) => r.PickScore.Processor = v);
        Int("reward.pickscore.batch_size", r => r.PickScore.BatchSize, (r, v) => r.PickScore.BatchSize = v, 1);
        Str("reward.clipscore.model", r => r.ClipScore.Model, (r, v) => r.ClipScore.Model = v);
        Str("reward.clipscore.processor", r => r.ClipScore.Processor, (r, v) => r.ClipScore.Processor = v);
        Int("reward.clipscore.batch_size", r => r.ClipScore.BatchSize, (r, v) => r.ClipScore.BatchSize = v, 1);
        Str("reward.hpsv2.model", r => r.Hpsv2.Model, (r, v) => r.Hpsv2.Model = v);
        Str("reward.hpsv2.processor", r => r.Hpsv2.Processor, (r, v) => r.Hpsv2.Processor = v);
        Int("reward.hpsv2.batch_size", r => r.Hpsv2.BatchSize, (r, v) => r.Hpsv2.BatchSize = v, 1);

        // [reward.bertscore]
        Str("reward.bertscore.model", r => r.BertScore.Model, (r, v) => r.BertScore.Model = v);
        Int("reward.bertscore.num_layers", r => r.BertScore.NumLayers, (r, v) => r.BertScore.NumLayers = v, -1);
        Bool("reward.bertscore.idf", r => r.BertScore.Idf, (r, v) => r.BertScore.Idf = v);
        Str("reward.bertscore.baseline", r => r.BertScore.Baseline, (r, v) => r.BertScore.Baseline = v);

        // [reward.vlm]
        Str("reward.vlm.base_url", r => r.Vlm.BaseUrl, (r, v) => r.Vlm.BaseUrl = v, HttpUrl);
        Str("reward.vlm.model", r => r.Vlm.Model, (r, v) => r.Vlm.Model = v);
        Str("reward.vlm.api_key_env", r => r.Vlm.ApiKeyEnv, (r, v) => r.Vlm.ApiKeyEnv = v);
        Str("reward.vlm.question", r => r.Vlm.Question, (r, v) => r.Vlm.Question = v,
            v => string.IsNullOrWhiteSpace(v) ? "must not be empty" : null);
        Int("reward.vlm.max_tokens", r => r.Vlm.MaxTokens, (r, v) => r.Vlm.MaxTokens = v, 1);
        Float("reward.vlm.temperature", r => r.Vlm.Temperature, (r, v) => r.Vlm.Temperature = v, 0, exclusive: false);
        Int("reward.vlm.max_concurrency", r => r.Vlm.MaxConcurrency, (r, v) => r.Vlm.MaxConcurrency = v, 1);
        Float("reward.vlm.timeout_s", r => r.Vlm.TimeoutS, (r, v) => r.Vlm.TimeoutS = v, 0, exclusive: true);
        Int("reward.vlm.max_retries", r => r.Vlm.MaxRetries, (r, v) => r.Vlm.MaxRetries = v, 0);
        Float("reward.vlm.backoff_s", r => r.Vlm.BackoffS, (r, v) => r.Vlm.BackoffS = v, 0, exclusive: false);
        Str("reward.vlm.image_format", r => r.Vlm.ImageFormat, (r, v) => r.Vlm.ImageFormat = v, ImageFormat);

        // [reward.server]
        Str("reward.server.base_url", r => r.Server.BaseUrl, (r, v) => r.Server.BaseUrl = v, HttpUrl);
        Int("reward.server.batch_size", r => r.Server.BatchSize, (r, v) => r.Server.BatchSize = v, 1);
        Float("reward.server.timeout_s", r => r.Server.TimeoutS, (r, v) => r.Server.TimeoutS = v, 0, exclusive: true);
        Int("reward.server.max_retries", r => r.Server.MaxRetries, (r, v) => r.Server.MaxRetries = v, 0);
        Float("reward.server.backoff_s", r => r.Server.BackoffS, (r, v) => r.Server.BackoffS = v, 0, exclusive: false);
        Str("reward.server.image_format", r => r.Server.ImageFormat, (r, v) => r.Server.ImageFormat = v, ImageFormat);

        // [reward.ocr]
        Str("reward.ocr.base_url", r => r.Ocr.BaseUrl, (r, v) => r.Ocr.BaseUrl = v, HttpUrl);
        Int("reward.ocr.batch_size", r => r.Ocr.BatchSize, (r, v) => r.Ocr.BatchSize = v, 1);
        Float("reward.ocr.timeout_s", r => r.Ocr.TimeoutS, (r, v) => r.Ocr.TimeoutS = v, 0, exclusive: true);
        Int("reward.ocr.max_retries", r => r.Ocr.MaxRetries, (r, v) => r.Ocr.MaxRetries = v, 0);
        Float("reward.ocr.backoff_s", r => r.Ocr.BackoffS, (r, v) => r.Ocr.BackoffS = v, 0, exclusive: false);
        Str("reward.ocr.image_format", r => r.Ocr.ImageFormat, (r, v) => r.Ocr.ImageFormat = v, ImageFormat);

        // [reward.geneval]
        Str("reward.geneval.base_url", r => r.Geneval.BaseUrl, (r, v) => r.Geneval.BaseUrl = v, HttpUrl);
        Int("reward.geneval.batch_size", r => r.Geneval.BatchSize, (r, v) => r.Geneval.BatchSize = v, 1);
        Bool("reward.geneval.only_strict", r => r.Geneval.OnlyStrict, (r, v) => r.Geneval.OnlyStrict = v);
        Float("reward.geneval.timeout_s", r => r.Geneval.TimeoutS, (r, v) => r.Geneval.TimeoutS = v, 0, exclusive: true);
        Int("reward.geneval.max_retries", r => r.Geneval.MaxRetries, (r, v) => r.Geneval.MaxRetries = v, 0);
        Float("reward.geneval.backoff_s", r => r.Geneval.BackoffS, (r, v) => r.Geneval.BackoffS = v, 0, exclusive: false);

        // [reward.vlm_score] (the server is [reward.vlm]'s)
        Str("reward.vlm_score.template", r => r.VlmScore.Template, (r, v) => r.VlmScore.Template = v, VlmScoreTemplates.Check);
        Str("reward.vlm_score.scale", r => r.VlmScore.Scale, (r, v) => r.VlmScore.Scale = v, v => VlmScoreScale.TryParse(v, out _) ? null : $"must be 1-5 or 0-10, got '{v}'");
        Int("reward.vlm_score.max_tokens", r => r.VlmScore.MaxTokens, (r, v) => r.VlmScore.MaxTokens = v, 1);
    }
}
