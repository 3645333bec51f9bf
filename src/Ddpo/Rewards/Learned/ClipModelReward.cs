using Ddpo.Imaging;
using Ddpo.Imaging.Resampling;
using Ddpo.Models.Clip;
using Ddpo.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Rewards.Learned;

/// <summary>
/// How a <see cref="ClipModelReward"/> preprocesses and scales: PickScore and CLIPScore differ only here.
/// <paramref name="PilPreprocessing"/>: score 8-bit images through transformers' processor (PIL resize) rather than
/// torchvision on the quantised tensor; <paramref name="TensorFilter"/>: the torchvision resize filter of the tensor
/// path; <paramref name="PadToMaxLength"/>: pad prompts to 77 rather than to the longest; the score is
/// <c>logit_scale.exp() · cos / Divisor</c>.
/// </summary>
internal sealed record ClipRewardRecipe(string Name, bool PilPreprocessing, ResampleFilter TensorFilter, bool PadToMaxLength, double Divisor)
{
    /// <summary>Flow-GRPO's <c>pickscore</c> (flow_grpo/pickscore_scorer.py at 9745241; the gradient path is imscore's PickScorer).</summary>
    public static readonly ClipRewardRecipe PickScore = new(RewardNames.PickScore, PilPreprocessing: true, ResampleFilter.Bicubic, PadToMaxLength: false, Divisor: 26);

    /// <summary>Flow-GRPO's <c>clipscore</c> (flow_grpo/clip_scorer.py at 9745241: torchvision's default bilinear resize).</summary>
    public static readonly ClipRewardRecipe ClipScore = new(RewardNames.ClipScore, PilPreprocessing: false, ResampleFilter.Bilinear, PadToMaxLength: true, Divisor: 30);
}

/// <summary>
/// A prompt-image reward on a full CLIP model (<c>CLIPModel</c>): <c>logit_scale.exp() · cos(image, prompt)</c>
/// divided by a constant, as Flow-GRPO's <c>pickscore</c> (÷ 26) and <c>clipscore</c> (÷ 30) compute it. Images
/// are quantised to 8 bits first (as Flow-GRPO's reward functions do); the model runs in the given dtype and device
/// under no_grad, <see cref="BatchSize"/> images at a time. Thread-safe (calls are serialised).
/// </summary>
internal sealed class ClipModelReward : IDifferentiableReward, IDisposable
{
    private readonly ClipModel _model;
    private readonly ClipTokenizer _tokenizer;
    private readonly ClipImageProcessorConfig _processor;
    private readonly ClipRewardRecipe _recipe;
    private readonly object _lock = new();

    internal ClipModelReward(ClipModel model, ClipTokenizer tokenizer, ClipImageProcessorConfig processor, ClipRewardRecipe recipe, int batchSize)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        _processor = processor ?? throw new ArgumentNullException(nameof(processor));
        _recipe = recipe ?? throw new ArgumentNullException(nameof(recipe));
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (processor.CropSize != model.Config.Vision.ImageSize)
        {
            throw new ArgumentException($"{recipe.Name}: the processor crops to {processor.CropSize} px but the vision tower takes {model.Config.Vision.ImageSize} px images");
        }
        if (tokenizer.VocabSize > model.Config.Text.VocabSize)
        {
            throw new ArgumentException($"{recipe.Name}: the tokenizer has {tokenizer.VocabSize} ids but the text tower only {model.Config.Text.VocabSize}");
        }
        BatchSize = batchSize;
    }

    /// <inheritdoc/>
    public string Name => _recipe.Name;

    /// <summary>Images per model forward pass in <see cref="ScoreAsync"/>.</summary>
    public int BatchSize { get; }

    /// <summary>Flow-GRPO's <c>pickscore</c>: a PickScore_v1 <c>CLIPModel</c> folder and a <c>CLIPProcessor</c> folder (laion/CLIP-ViT-H-14-laion2B-s32B-b79K).</summary>
    public static ClipModelReward LoadPickScore(string modelFolder, string processorFolder, Device? device = null, ScalarType dtype = ScalarType.Float32, int batchSize = 16) =>
        Load(ClipRewardRecipe.PickScore, modelFolder, processorFolder, device, dtype, batchSize);

    /// <summary>Flow-GRPO's <c>clipscore</c>: a <c>CLIPModel</c> folder (openai/clip-vit-large-patch14) and its processor folder (often the same).</summary>
    public static ClipModelReward LoadClipScore(string modelFolder, string processorFolder, Device? device = null, ScalarType dtype = ScalarType.Float32, int batchSize = 16) =>
        Load(ClipRewardRecipe.ClipScore, modelFolder, processorFolder, device, dtype, batchSize);

    private static ClipModelReward Load(ClipRewardRecipe recipe, string modelFolder, string processorFolder, Device? device, ScalarType dtype, int batchSize)
    {
        var processor = ClipImageProcessorConfig.LoadFolder(processorFolder);
        var tokenizer = ClipTokenizer.FromFolder(processorFolder);
        var model = ClipModel.FromPretrained(modelFolder, dtype, device ?? CPU);
        try
        {
            return new ClipModelReward(model, tokenizer, processor, recipe, batchSize);
        }
        catch
        {
            model.Dispose();
            throw;
        }
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
                var s = Similarity(QuantisedPixels(chunk), prompts.Skip(start).Take(n).ToList());
                s.to(ScalarType.Float32).cpu().data<float>().CopyTo(scores, start);
            }
            return scores;
        }
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Not quantised and always through torchvision's transforms on the tensor (PickScore: imscore's
    /// <c>PickScorer</c> path, bicubic antialiased; CLIPScore: the same bilinear path as <see cref="Score"/>), so it
    /// differs from <see cref="Score"/> by the 8-bit rounding and, for PickScore, PIL's fixed-point resize.
    /// </remarks>
    public Tensor ScoreDifferentiable(Tensor images, IReadOnlyList<string> prompts)
    {
        CheckBatch(images, prompts);
        lock (_lock)
        {
            using var scope = NewDisposeScope();
            var device = images.device;
            var anchor = _model.Anchor;
            var pixels = ClipRewardPixels.Torchvision(images.to(ScalarType.Float32).to(anchor.device), _processor.ShortestEdge, _processor.CropSize,
                _recipe.TensorFilter, _processor.Mean, _processor.Std);
            return Similarity(pixels, prompts).to(ScalarType.Float32).to(device).MoveToOuterDisposeScope();
        }
    }

    /// <inheritdoc/>
    public Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        ct.ThrowIfCancellationRequested();
        return Task.Run(() => new RewardResult(Score(batch.Images, batch.Prompts)), ct);
    }

    /// <summary>Pixel values of the 8-bit quantised images, as Flow-GRPO's reward function hands them to the scorer.</summary>
    private Tensor QuantisedPixels(Tensor images)
    {
        int b = (int)images.shape[0], h = (int)images.shape[2], w = (int)images.shape[3];
        var rgb = ImageTensor.ToRgbBytes(images);
        if (_recipe.PilPreprocessing) return ClipRewardPixels.Processor(rgb, b, h, w, _processor);
        using var scope = NewDisposeScope();
        var x = tensor(rgb, [b, h, w, 3]).permute(0, 3, 1, 2).to(ScalarType.Float32, _model.Anchor.device) / 255.0;
        return ClipRewardPixels.Torchvision(x, _processor.ShortestEdge, _processor.CropSize, _recipe.TensorFilter, _processor.Mean, _processor.Std)
            .MoveToOuterDisposeScope();
    }

    /// <summary><c>logit_scale.exp() · cos / divisor</c> per (image, prompt) pair; the text side carries no gradient.</summary>
    private Tensor Similarity(Tensor pixels, IReadOnlyList<string> prompts)
    {
        using var scope = NewDisposeScope();
        Tensor text;
        using (no_grad())
        {
            text = _model.GetTextFeatures(ClipRewardText.Ids(_tokenizer, prompts, _recipe.PadToMaxLength)).to(ScalarType.Float32);
            text = text / linalg.vector_norm(text, dims: [-1], keepdim: true);
        }
        var image = _model.GetImageFeatures(pixels).to(ScalarType.Float32);
        image = image / linalg.vector_norm(image, dims: [-1], keepdim: true);
        var scale = _model.LogitScaleExp().detach().to(ScalarType.Float32);
        return ((image * text).sum(-1) * scale / _recipe.Divisor).MoveToOuterDisposeScope();
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
