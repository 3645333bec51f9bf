namespace Ddpo.Config;

/// <summary>
/// The <c>[draft]</c> section: what every reward-backpropagation algorithm (<c>draft</c>, <c>draft_lv</c>, <c>refl</c>,
/// <c>alignprop</c>) shares, and DRaFT's own K and LV settings (Clark et al. 2023, arXiv 2309.17400).
/// </summary>
internal sealed class DraftConfig
{
    /// <summary><c>k</c>: DRaFT-K's number of final sampling steps backpropagated through (1 to <c>sample.num_steps</c>).</summary>
    public int K { get; set; } = 1;

    /// <summary>
    /// <c>reward_scale</c>: the loss is <c>-reward_scale x mean reward</c> over a micro-batch (ReFL's and AlignProp's
    /// <c>grad_scale</c>/<c>loss_coeff</c> role).
    /// </summary>
    public double RewardScale { get; set; } = 1.0;

    /// <summary>
    /// <c>lv_samples</c>: DRaFT-LV's n, the re-noisings of the final sample to the last step's time, each denoised with
    /// gradients, whose reward gradients are averaged (the paper's variance reduction; it uses n = 2).
    /// </summary>
    public int LvSamples { get; set; } = 2;

    /// <summary>
    /// <c>checkpointing</c>: gradient checkpointing of every denoiser call with gradients (true, default): the backward
    /// pass recomputes each step, so it holds one step's activations instead of K.
    /// </summary>
    public bool Checkpointing { get; set; } = true;
}

/// <summary>
/// The <c>[refl]</c> section: ReFL (ImageReward, Xu et al. 2023, THUDM/ImageReward <c>ReFL.py</c>) samples without
/// gradients to a step drawn uniformly from <c>min_step</c>..<c>max_step</c> (0-based step indices, inclusive), takes
/// that one step's denoiser output with gradients to the predicted x0, and scores its decoded image.
/// </summary>
internal sealed class ReflConfig
{
    /// <summary><c>min_step</c>: the earliest step index the gradient step may be (ReFL: 30 of 40).</summary>
    public int MinStep { get; set; } = 30;

    /// <summary><c>max_step</c>: the latest (inclusive, below <c>sample.num_steps</c>; ReFL: 39 of 40).</summary>
    public int MaxStep { get; set; } = 39;
}

/// <summary>
/// The <c>[alignprop]</c> section: AlignProp (Prabhudesai et al. 2023, mihirp1998/AlignProp) backpropagates through
/// the chain's last K steps with K drawn uniformly from <c>min_k</c>..<c>max_k</c> per micro-batch (randomised
/// truncation), every step checkpointed.
/// </summary>
internal sealed class AlignPropConfig
{
    /// <summary><c>min_k</c>: the fewest final steps with gradients.</summary>
    public int MinK { get; set; } = 1;

    /// <summary><c>max_k</c>: the most (inclusive; at most <c>sample.num_steps</c>, which is the whole chain).</summary>
    public int MaxK { get; set; } = 10;
}
