namespace Ddpo.Schedulers;

/// <summary>What a denoiser predicts (diffusers' <c>prediction_type</c>, as far as training needs it).</summary>
internal enum PredictionType
{
    /// <summary>The noise epsilon added to x_0 (DDPM/DDIM: x_t = sqrt(abar) x_0 + sqrt(1 - abar) epsilon).</summary>
    Epsilon,

    /// <summary>x_0 itself (diffusers' <c>sample</c>).</summary>
    Sample,

    /// <summary>v = sqrt(abar) epsilon - sqrt(1 - abar) x_0 (diffusers' <c>v_prediction</c>, SD 2.x at 768 px).</summary>
    VPrediction,

    /// <summary>A rectified flow's velocity, noise - x_0 (x_sigma = (1 - sigma) x_0 + sigma noise).</summary>
    Velocity,
}
