using static TorchSharp.torch;

namespace Ddpo.Rewards;

/// <summary>
/// Rewards computed from pixel statistics, with no model: cheap "watch" rewards that reveal when
/// optimising another reward degrades images (e.g. compressibility flattening them).
/// </summary>
public sealed class ImageStatisticReward : IDifferentiableReward
{
    private readonly Func<Tensor, Tensor> _score;

    private ImageStatisticReward(string name, Func<Tensor, Tensor> score)
    {
        Name = name;
        _score = score;
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>Brightness: mean luminance (0.299 R + 0.587 G + 0.114 B), in [0, 1]; the simplest reward a policy can learn.</summary>
    public static ImageStatisticReward Brightness() => new(RewardNames.Brightness, images =>
        (0.299 * images[.., 0] + 0.587 * images[.., 1] + 0.114 * images[.., 2]).flatten(1).mean([1L]));

    /// <summary>RMS contrast: the standard deviation of luminance (0.299 R + 0.587 G + 0.114 B), in [0, 0.5].</summary>
    public static ImageStatisticReward Contrast() => new(RewardNames.ImageContrast, images =>
    {
        var luma = 0.299 * images[.., 0] + 0.587 * images[.., 1] + 0.114 * images[.., 2];
        return luma.flatten(1).std(1, unbiased: false);
    });

    /// <summary>
    /// Colourfulness (Hasler and Süsstrunk 2003) on 0..1 channels: sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2),
    /// with rg = R - G and yb = (R + G) / 2 - B.
    /// </summary>
    public static ImageStatisticReward Colorfulness() => new(RewardNames.Colorfulness, images =>
    {
        var rg = (images[.., 0] - images[.., 1]).flatten(1);
        var yb = (0.5 * (images[.., 0] + images[.., 1]) - images[.., 2]).flatten(1);
        var spread = (rg.std(1, unbiased: false).pow(2) + yb.std(1, unbiased: false).pow(2)).sqrt();
        var mean = (rg.mean([1L]).pow(2) + yb.mean([1L]).pow(2)).sqrt();
        return spread + 0.3 * mean;
    });

    /// <inheritdoc />
    public Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        using var scope = NewDisposeScope();
        var values = _score(batch.Images.to(ScalarType.Float32)).data<float>().ToArray();
        return Task.FromResult(new RewardResult(values));
    }

    /// <inheritdoc />
    public Tensor ScoreDifferentiable(Tensor images, IReadOnlyList<string> prompts)
    {
        if (images.dim() != 4 || images.shape[1] != 3)
        {
            throw new ArgumentException($"{Name}: expected images [B, 3, H, W], got [{string.Join(", ", images.shape)}]");
        }
        return _score(images.to(ScalarType.Float32));
    }
}
