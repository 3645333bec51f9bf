using Ddpo.Imaging;
using Ddpo.Models.Clip;
using Ddpo.Models.Loading;
using Ddpo.Models.OpenClip;
using Ddpo.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Rewards.Learned;

/// <summary>
/// The <c>hpsv2</c> reward: HPSv2.1 as hpsv2's <c>img_score.score(image, prompt, hps_version="v2.1")</c> computes it
/// (tgxs002/HPSv2 at 866735e): <c>diag(normalize(encode_image(preprocess_val(image))) · normalize(encode_text(tokenize(prompt)))ᵀ)</c>,
/// the cosine, not ×100 (that is evaluation.py's benchmark convention). Images are quantised to 8 bits first (upstream
/// scores PIL images); the model runs in the given dtype and device under no_grad. Thread-safe (calls are serialised).
/// </summary>
internal sealed class Hpsv2Reward : IDifferentiableReward, IDisposable
{
    private readonly OpenClipModel _model;
    private readonly OpenClipTokenizer _tokenizer;
    private readonly object _lock = new();

    internal Hpsv2Reward(OpenClipModel model, OpenClipTokenizer tokenizer, int batchSize)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (tokenizer.VocabSize > model.Config.VocabSize)
        {
            throw new ArgumentException($"{RewardNames.Hpsv2}: the tokenizer has {tokenizer.VocabSize} ids but the text tower only {model.Config.VocabSize}");
        }
        BatchSize = batchSize;
    }

    /// <inheritdoc/>
    public string Name => RewardNames.Hpsv2;

    /// <summary>Images per model forward pass in <see cref="ScoreAsync"/>.</summary>
    public int BatchSize { get; }

    /// <summary>
    /// Loads an open_clip model config (<c>ViT-H-14.json</c> format), its weights (safetensors, or
    /// <c>HPS_v2.1_compressed.pt</c> read through the restricted unpickler) and open_clip's BPE merges
    /// (<c>bpe_simple_vocab_16e6.txt.gz</c>).
    /// </summary>
    public static Hpsv2Reward Load(string configPath, string weightsPath, string mergesPath, Device? device = null, ScalarType dtype = ScalarType.Float32, int batchSize = 16)
    {
        var tokenizer = OpenClipTokenizer.FromMergesFile(mergesPath);
        var model = OpenClipModel.FromFiles(configPath, weightsPath, dtype, device ?? CPU);
        try
        {
            return new Hpsv2Reward(model, tokenizer, batchSize);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Finds the files of <see cref="Load"/> in a model folder (the one <c>*.json</c> model config and the one
    /// <c>*.safetensors</c> or, failing that, <c>*.pt</c>/<c>*.pth</c> weights file) and a tokenizer path (the merges
    /// file, or a folder holding one <c>*.txt.gz</c>); <paramref name="key"/> names the setting in errors.
    /// </summary>
    public static (string Config, string Weights, string Merges) FindFiles(string modelFolder, string tokenizerPath, string key = "reward.hpsv2")
    {
        if (!Directory.Exists(modelFolder)) throw new ModelLoadException($"{key}.model: folder '{modelFolder}' not found");
        string One(string folder, string what, string setting, params string[] patterns)
        {
            foreach (var pattern in patterns)
            {
                var found = Directory.GetFiles(folder, pattern).Order(StringComparer.Ordinal).ToArray();
                if (found.Length == 1) return found[0];
                if (found.Length > 1) throw new ModelLoadException($"{setting}: '{folder}' holds {found.Length} {what} files ({string.Join(", ", found.Select(Path.GetFileName))}); keep one");
            }
            throw new ModelLoadException($"{setting}: '{folder}' holds no {what} file ({string.Join(" or ", patterns)})");
        }
        var config = One(modelFolder, "open_clip model config", $"{key}.model", "*.json");
        var weights = One(modelFolder, "weights", $"{key}.model", "*.safetensors", "*.pt", "*.pth");
        var merges = Directory.Exists(tokenizerPath) ? One(tokenizerPath, "BPE merges", $"{key}.processor", "*.txt.gz") : tokenizerPath;
        return (config, weights, merges);
    }

    /// <summary>The scores of images [B, 3, H, W] in [0, 1] against one prompt each (quantised to 8 bits, no gradient).</summary>
    public float[] Score(Tensor images, IReadOnlyList<string> prompts)
    {
        CheckBatch(images, prompts);
        lock (_lock)
        {
            var scores = new float[images.shape[0]];
            for (int start = 0; start < images.shape[0]; start += BatchSize)
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                int n = (int)Math.Min(BatchSize, images.shape[0] - start);
                var chunk = images.narrow(0, start, n);
                int h = (int)chunk.shape[2], w = (int)chunk.shape[3];
                // ToTensor of the 8-bit image, as preprocess_val sees the PIL image.
                var x = tensor(ImageTensor.ToRgbBytes(chunk), [n, h, w, 3]).permute(0, 3, 1, 2).to(ScalarType.Float32, _model.Anchor.device) / 255.0;
                Cosine(x, prompts.Skip(start).Take(n).ToList()).to(ScalarType.Float32).cpu().data<float>().CopyTo(scores, start);
            }
            return scores;
        }
    }

    /// <inheritdoc/>
    /// <remarks>The same tensor stages as <see cref="Score"/> on the unquantised images.</remarks>
    public Tensor ScoreDifferentiable(Tensor images, IReadOnlyList<string> prompts)
    {
        CheckBatch(images, prompts);
        lock (_lock)
        {
            using var scope = NewDisposeScope();
            var device = images.device;
            return Cosine(images.to(ScalarType.Float32).to(_model.Anchor.device), prompts).to(ScalarType.Float32).to(device).MoveToOuterDisposeScope();
        }
    }

    /// <inheritdoc/>
    public Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        ct.ThrowIfCancellationRequested();
        return Task.Run(() => new RewardResult(Score(batch.Images, batch.Prompts)), ct);
    }

    private Tensor Cosine(Tensor images, IReadOnlyList<string> prompts)
    {
        using var scope = NewDisposeScope();
        Tensor text;
        using (no_grad())
        {
            text = _model.EncodeText(_tokenizer.Tokenize(prompts, _model.Config.ContextLength)).to(ScalarType.Float32);
            text = text / linalg.vector_norm(text, dims: [-1], keepdim: true);
        }
        var pixels = Hpsv2Pixels.Preprocess(images, _model.Config.ImageSize, ClipImagePreprocessor.ClipMean, ClipImagePreprocessor.ClipStd);
        var image = _model.EncodeImage(pixels).to(ScalarType.Float32);
        image = image / linalg.vector_norm(image, dims: [-1], keepdim: true);
        return (image * text).sum(-1).MoveToOuterDisposeScope();
    }

    private static void CheckBatch(Tensor images, IReadOnlyList<string> prompts)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(prompts);
        if (images.dim() != 4 || images.shape[1] != 3) throw new ArgumentException($"images: expected [B, 3, H, W], got [{string.Join(", ", images.shape)}]");
        if (prompts.Count != images.shape[0]) throw new ArgumentException($"{images.shape[0]} images but {prompts.Count} prompts");
    }

    /// <inheritdoc/>
    public void Dispose() => _model.Dispose();
}
