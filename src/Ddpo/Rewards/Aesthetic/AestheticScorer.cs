using Ddpo.Models.Clip;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Rewards.Aesthetic;

/// <summary>
/// The LAION aesthetic predictor as ddpo-pytorch's <c>AestheticScorer</c>: images quantised to 8 bits, CLIP
/// preprocessing (<see cref="ClipImagePreprocessor"/> at the tower's image size), CLIP image embeddings
/// L2-normalised, then the <see cref="AestheticHead"/>. Thread-safe (calls are serialised).
/// </summary>
public sealed class AestheticScorer : IDisposable
{
    private readonly ClipVisionModelWithProjection _clip;
    private readonly AestheticHead _head;
    private readonly ClipImagePreprocessor _preprocessor;
    private readonly object _lock = new();

    /// <summary>Combines a CLIP image tower and a head of matching width (both disposed with the scorer).</summary>
    internal AestheticScorer(ClipVisionModelWithProjection clip, AestheticHead head, int batchSize = 16)
    {
        _clip = clip ?? throw new ArgumentNullException(nameof(clip));
        _head = head ?? throw new ArgumentNullException(nameof(head));
        if (head.InputDim != clip.Config.ProjectionDim)
        {
            throw new ArgumentException($"the aesthetic head takes {head.InputDim}-wide embeddings but the CLIP model projects to {clip.Config.ProjectionDim}");
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        BatchSize = batchSize;
        _preprocessor = new ClipImagePreprocessor(clip.Config.ImageSize, clip.Config.ImageSize);
    }

    /// <summary>Images per CLIP forward pass.</summary>
    public int BatchSize { get; }

    /// <summary>Loads the CLIP folder (<c>CLIPModel</c> or <c>CLIPVisionModelWithProjection</c>) and the head file on <paramref name="device"/>.</summary>
    public static AestheticScorer Load(string clipFolder, string headPath, Device? device = null, int batchSize = 16)
    {
        device ??= CPU;
        var head = AestheticHead.Load(headPath, device);
        try
        {
            var clip = ClipVisionModelWithProjection.FromPretrained(clipFolder, ScalarType.Float32, device);
            try
            {
                return new AestheticScorer(clip, head, batchSize);
            }
            catch
            {
                clip.Dispose();
                throw;
            }
        }
        catch
        {
            head.Dispose();
            throw;
        }
    }

    /// <summary>The L2-normalised CLIP embeddings [B, D] of images [B, 3, H, W] in [0, 1] (quantised to 8 bits first, as ddpo-pytorch).</summary>
    public Tensor Embed(Tensor images)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var device = _head.parameters().First().device;
        var quantised = (images.to(ScalarType.Float32) * 255).round().clamp(0, 255) / 255;
        var pixels = _preprocessor.Preprocess(quantised.to(device));
        var embeds = _clip.GetImageEmbeds(pixels).to(ScalarType.Float32);
        return (embeds / linalg.vector_norm(embeds, dims: [-1], keepdim: true)).MoveToOuterDisposeScope();
    }

    /// <summary>One aesthetic score per image of [B, 3, H, W] in [0, 1].</summary>
    public float[] Score(Tensor images)
    {
        if (images.dim() != 4 || images.shape[1] != 3)
        {
            throw new ArgumentException($"images: expected [B, 3, H, W], got [{string.Join(", ", images.shape)}]");
        }
        lock (_lock)
        {
            var scores = new float[images.shape[0]];
            for (long start = 0; start < images.shape[0]; start += BatchSize)
            {
                using var scope = NewDisposeScope();
                long n = Math.Min(BatchSize, images.shape[0] - start);
                var s = _head.Forward(Embed(images.narrow(0, start, n))).to(ScalarType.Float32).cpu();
                s.data<float>().CopyTo(scores, (int)start);
            }
            return scores;
        }
    }

    /// <summary>
    /// The scores with the graph kept, for reward backpropagation: images [B, 3, H, W] in [0, 1] (any device, moved to
    /// the models') without the 8-bit quantisation of <see cref="Score"/> (which has no gradient), then the same
    /// differentiable CLIP preprocessing (antialiased bicubic resize, centre crop, normalise), embedding, L2 norm and
    /// head. [B] float32 on the models' device. The weights get no gradient.
    /// </summary>
    public Tensor ScoreDifferentiable(Tensor images)
    {
        if (images.dim() != 4 || images.shape[1] != 3)
        {
            throw new ArgumentException($"images: expected [B, 3, H, W], got [{string.Join(", ", images.shape)}]");
        }
        using var scope = NewDisposeScope();
        var device = _head.parameters().First().device;
        var pixels = _preprocessor.Preprocess(images.to(ScalarType.Float32).to(device));
        var embeds = _clip.GetImageEmbeds(pixels).to(ScalarType.Float32);
        var normed = embeds / linalg.vector_norm(embeds, dims: [-1], keepdim: true);
        return _head.Forward(normed).to(ScalarType.Float32).reshape(-1).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _clip.Dispose();
        _head.Dispose();
    }
}

/// <summary>The <c>aesthetic_score</c> reward: the LAION aesthetic predictor's score of each image.</summary>
public sealed class AestheticReward : IDifferentiableReward, IDisposable
{
    private readonly AestheticScorer _scorer;

    /// <summary>Scores with <paramref name="scorer"/> (disposed with the reward).</summary>
    public AestheticReward(AestheticScorer scorer) => _scorer = scorer ?? throw new ArgumentNullException(nameof(scorer));

    /// <inheritdoc/>
    public string Name => RewardNames.AestheticScore;

    /// <inheritdoc/>
    public Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        ct.ThrowIfCancellationRequested();
        return Task.Run(() => new RewardResult(_scorer.Score(batch.Images)), ct);
    }

    /// <inheritdoc />
    public Tensor ScoreDifferentiable(Tensor images, IReadOnlyList<string> prompts) => _scorer.ScoreDifferentiable(images);

    /// <inheritdoc />
    public void Dispose() => _scorer.Dispose();
}
