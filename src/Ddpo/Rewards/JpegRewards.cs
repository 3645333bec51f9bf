namespace Ddpo.Rewards;

/// <summary>JPEG size in kB at quality 95: rewards images that do not compress (ddpo-pytorch <c>jpeg_incompressibility</c>).</summary>
public sealed class JpegIncompressibilityReward : IRewardFunction
{
    /// <inheritdoc/>
    public string Name => RewardNames.JpegIncompressibility;

    /// <inheritdoc/>
    public Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        ct.ThrowIfCancellationRequested();
        return Task.FromResult(new RewardResult(JpegEncoding.SizesInKilobytes(batch.Images)));
    }
}

/// <summary>Minus the JPEG size in kB at quality 95: rewards compressible images (ddpo-pytorch <c>jpeg_compressibility</c>).</summary>
public sealed class JpegCompressibilityReward : IRewardFunction
{
    /// <inheritdoc/>
    public string Name => RewardNames.JpegCompressibility;

    /// <inheritdoc/>
    public Task<RewardResult> ScoreAsync(RewardBatch batch, CancellationToken ct)
    {
        batch.Validate();
        ct.ThrowIfCancellationRequested();
        var sizes = JpegEncoding.SizesInKilobytes(batch.Images);
        return Task.FromResult(new RewardResult(sizes.Select(s => -s).ToArray()));
    }
}
