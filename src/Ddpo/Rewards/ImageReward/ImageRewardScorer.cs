using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Rewards.ImageReward;

/// <summary>
/// ImageReward scores of (prompt, image) pairs: <see cref="ImageRewardModel"/>, its tokenizer and preprocessing.
/// <see cref="Score"/> is <c>ImageReward.score</c> on each pair (the PIL path, as Flow-GRPO's <c>ImageRewardScorer</c>
/// calls it); <see cref="ScoreDifferentiable"/> is ReFL's <c>score_gard</c> on the tensor path. Calls are serialised.
/// </summary>
internal sealed class ImageRewardScorer : IDisposable
{
    private readonly ImageRewardModel _model;
    private readonly ImageRewardTokenizer _tokenizer;
    private readonly object _lock = new();

    /// <summary>Combines a model and a tokenizer (the model is disposed with the scorer).</summary>
    public ImageRewardScorer(ImageRewardModel model, ImageRewardTokenizer tokenizer, int batchSize = 16)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (tokenizer.MaxLength > model.Config.Text.MaxPositionEmbeddings)
        {
            throw new ArgumentException($"the tokenizer pads to {tokenizer.MaxLength} tokens but the text encoder has {model.Config.Text.MaxPositionEmbeddings} positions");
        }
        BatchSize = batchSize;
        Preprocessor = new ImageRewardPreprocessor(model.Config.Vision.ImageSize);
    }

    /// <summary>Pairs per forward pass in <see cref="Score"/>.</summary>
    public int BatchSize { get; }

    /// <summary>The image preprocessing at the model's size.</summary>
    public ImageRewardPreprocessor Preprocessor { get; }

    /// <summary>
    /// Loads the model (<see cref="ImageRewardModel.FromPretrained"/>) and the tokenizer folder (<c>vocab.txt</c>, padded to
    /// the config's <c>text_max_length</c>) on <paramref name="device"/>.
    /// </summary>
    public static ImageRewardScorer Load(string modelPath, string tokenizerFolder, Device? device = null, int batchSize = 16)
    {
        var model = ImageRewardModel.FromPretrained(modelPath, device);
        try
        {
            return new ImageRewardScorer(model, ImageRewardTokenizer.FromFolder(tokenizerFolder, model.Config.TextMaxLength), batchSize);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The model.</summary>
    public ImageRewardModel Model => _model;

    /// <summary>The tokenizer.</summary>
    public ImageRewardTokenizer Tokenizer => _tokenizer;

    /// <summary>One score per pair of images [B, 3, H, W] (float in [0, 1], quantised to 8 bits, or uint8) and prompts, through the PIL path.</summary>
    public float[] Score(Tensor images, IReadOnlyList<string> prompts)
    {
        CheckPairs(images, prompts);
        lock (_lock)
        {
            var scores = new float[images.shape[0]];
            for (int start = 0; start < scores.Length; start += BatchSize)
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                int n = Math.Min(BatchSize, scores.Length - start);
                var pixels = Preprocessor.PreprocessPil(images.narrow(0, start, n));
                var (ids, mask) = _tokenizer.Encode(prompts.Skip(start).Take(n).ToList());
                _model.Score(pixels, ids, mask).cpu().data<float>().CopyTo(scores, start);
            }
            return scores;
        }
    }

    /// <summary>Scores [B] (float32 on the images' device, graph kept) of images [B, 3, H, W] in [0, 1] through ReFL's tensor preprocessing.</summary>
    public Tensor ScoreDifferentiable(Tensor images, IReadOnlyList<string> prompts)
    {
        CheckPairs(images, prompts);
        lock (_lock)
        {
            using var scope = NewDisposeScope();
            var pixels = Preprocessor.PreprocessTensor(images.to(_model.Device));
            var (ids, mask) = _tokenizer.Encode(prompts);
            return _model.Score(pixels, ids, mask).to(images.device).MoveToOuterDisposeScope();
        }
    }

    private static void CheckPairs(Tensor images, IReadOnlyList<string> prompts)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(prompts);
        if (images.dim() != 4 || images.shape[1] != 3)
        {
            throw new ArgumentException($"images: expected [B, 3, H, W], got [{string.Join(", ", images.shape)}]");
        }
        if (prompts.Count != images.shape[0]) throw new ArgumentException($"{images.shape[0]} images but {prompts.Count} prompts");
    }

    /// <inheritdoc/>
    public void Dispose() => _model.Dispose();
}

/// <summary>The <c>imagereward</c> reward: ImageReward-v1.0's score of each image against its prompt (THUDM/ImageReward, Flow-GRPO's <c>imagereward</c>).</summary>
internal sealed class ImageRewardReward : IDifferentiableReward, IDisposable
{
    private readonly ImageRewardScorer _scorer;

    /// <summary>Scores with <paramref name="scorer"/> (disposed with the reward).</summary>
    public ImageRewardReward(ImageRewardScorer scorer) => _scorer = scorer ?? throw new ArgumentNullException(nameof(scorer));

    /// <inheritdoc/>
    public string Name => RewardNames.ImageReward;

    /// <inheritdoc/>
    public Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        ct.ThrowIfCancellationRequested();
        return Task.Run(() => new RewardResult(_scorer.Score(batch.Images, batch.Prompts)), ct);
    }

    /// <inheritdoc/>
    /// <remarks>ReFL's preprocessing resizes in floating point, so the scores differ slightly from <see cref="ScoreAsync"/>'s 8-bit PIL path.</remarks>
    public Tensor ScoreDifferentiable(Tensor images, IReadOnlyList<string> prompts) => _scorer.ScoreDifferentiable(images, prompts);

    /// <inheritdoc/>
    public void Dispose() => _scorer.Dispose();
}
