namespace Ddpo.Config;

/// <summary>
/// The <c>[nft]</c> section: DiffusionNFT's settings (<c>algorithm = "nft"</c>), with the defaults of NVlabs/DiffusionNFT
/// <c>config/nft.py</c> <c>_get_config</c> and <c>config/base.py</c> at 24af555. Internal (set through the config keys
/// <c>nft.*</c>), so that the library's public surface stays as docs/architecture.md lists it.
/// </summary>
internal sealed class NftConfig
{
    /// <summary>
    /// <c>beta</c>: how far the implicit positive and negative policies lie from the old one,
    /// v+ = beta v_theta + (1 - beta) v_old and v- = (1 + beta) v_old - beta v_theta (<c>config.beta</c>, 1.0; its OCR
    /// and multi-reward configs use 0.1). The loss is divided by it.
    /// </summary>
    public double Beta { get; set; } = 1.0;

    /// <summary>The decay schedules of <see cref="DecayType"/>: (flat steps, rise per step, cap), train_nft_sd3.py's <c>return_decay</c>.</summary>
    public static readonly IReadOnlyList<(int Flat, double Rate, double Cap)> DecaySchedules = [(0, 0.0, 0.0), (0, 0.001, 0.5), (75, 0.0075, 0.999)];

    /// <summary>
    /// <c>decay_type</c>: the schedule of the old policy's EMA after each epoch, old = decay old + (1 - decay) theta with
    /// decay = 0 for the first flat optimizer steps, then min((steps - flat) rate, cap): 0 = always 0 (the old policy is
    /// the current one), 1 (default, <c>config.decay_type = 1</c>) = min(0.001 steps, 0.5), 2 (its OCR config) =
    /// min(0.0075 (steps - 75), 0.999) after 75 steps.
    /// </summary>
    public int DecayType { get; set; } = 1;

    /// <summary>The values of <see cref="TimestepDistribution"/>.</summary>
    public static readonly IReadOnlyList<string> TimestepDistributions = ["schedule", "uniform"];

    /// <summary>
    /// <c>timestep_distribution</c>: where each sample's training times come from. <c>"schedule"</c> (default, as
    /// train_nft_sd3.py): the sampling schedule's times, each sample's in its own random order, the first
    /// <c>int(num_steps * train.timestep_fraction)</c> of them. <c>"uniform"</c>: sigma ~ U(0, 1) per sample and step.
    /// </summary>
    public string TimestepDistribution { get; set; } = "schedule";

    /// <summary>
    /// <c>kl_coef</c>: weight of the KL-like penalty mean((v_theta - v_ref)^2) to the base model (LoRA off, or a frozen
    /// copy of the initial weights), added to the loss (train_nft_sd3.py's <c>train.beta</c>, 1e-4 in config/base.py);
    /// 0 skips the reference pass.
    /// </summary>
    public double KlCoef { get; set; } = 1e-4;
}
