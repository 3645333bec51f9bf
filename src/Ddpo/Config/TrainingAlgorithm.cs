namespace Ddpo.Config;

/// <summary>The policy-optimisation algorithm (the <c>algorithm</c> key).</summary>
public enum TrainingAlgorithm
{
    /// <summary><c>ddpo_is</c>: DDPO with importance sampling and PPO-style ratio clipping.</summary>
    DdpoIs,

    /// <summary><c>ddpo_sf</c>: DDPO with the score-function (REINFORCE) estimator, one step per batch.</summary>
    DdpoSf,

    /// <summary><c>rwr</c>: reward-weighted regression, weights softmax(r · <c>rwr.temperature</c>) over the epoch's samples.</summary>
    Rwr,

    /// <summary><c>rwr_sparse</c>: regression on the epoch's samples at or above the <c>rwr.percentile</c>-th reward percentile.</summary>
    RwrSparse,

    /// <summary>
    /// <c>grpo</c>: group-relative advantages ((r - group mean) / (group std + eps) over the <c>sample.group_size</c>
    /// images of each drawn prompt, <see cref="Training.GroupAdvantages"/>) with DDPO-IS's clipped update.
    /// </summary>
    Grpo,

    /// <summary>
    /// <c>nft</c>: DiffusionNFT (NVlabs/DiffusionNFT): group-relative advantages as GRPO's, turned into a reward weight
    /// that splits a flow-matching regression on the final clean samples between an implicit positive and negative
    /// policy around the "old" one (an EMA of the trained weights). Flow-matching families only (SD3, FLUX).
    /// </summary>
    Nft,

    /// <summary><c>draft</c>: DRaFT-K, the reward's gradient backpropagated through the last <c>draft.k</c> sampling steps.</summary>
    Draft,

    /// <summary><c>draft_lv</c>: DRaFT-LV, K = 1 with the gradient averaged over <c>draft.lv_samples</c> re-noisings of the final sample.</summary>
    DraftLv,

    /// <summary><c>refl</c>: ReFL, one step with gradients at a random late step to the predicted x0, decoded and scored.</summary>
    Refl,

    /// <summary><c>alignprop</c>: AlignProp, the chain with gradients from a randomly truncated step on, checkpointed.</summary>
    AlignProp,
}

/// <summary>Conversions between <see cref="TrainingAlgorithm"/> and its config name.</summary>
public static class TrainingAlgorithms
{
    private static readonly (TrainingAlgorithm Value, string Name)[] Table =
    [
        (TrainingAlgorithm.DdpoIs, "ddpo_is"),
        (TrainingAlgorithm.DdpoSf, "ddpo_sf"),
        (TrainingAlgorithm.Rwr, "rwr"),
        (TrainingAlgorithm.RwrSparse, "rwr_sparse"),
        (TrainingAlgorithm.Grpo, "grpo"),
        (TrainingAlgorithm.Nft, "nft"),
        (TrainingAlgorithm.Draft, "draft"),
        (TrainingAlgorithm.DraftLv, "draft_lv"),
        (TrainingAlgorithm.Refl, "refl"),
        (TrainingAlgorithm.AlignProp, "alignprop"),
    ];

    /// <summary>True for the reward-backpropagation algorithms (the reward's gradient flows into the sampler).</summary>
    public static bool IsRewardBackprop(this TrainingAlgorithm algorithm) =>
        algorithm is TrainingAlgorithm.Draft or TrainingAlgorithm.DraftLv or TrainingAlgorithm.Refl or TrainingAlgorithm.AlignProp;

    /// <summary>All config names, in declaration order.</summary>
    public static IReadOnlyList<string> Names { get; } = Table.Select(t => t.Name).ToArray();

    /// <summary>The config name of an algorithm (e.g. <c>ddpo_is</c>).</summary>
    public static string ToConfigName(this TrainingAlgorithm algorithm) =>
        Table.First(t => t.Value == algorithm).Name;

    /// <summary>Parses a config name; false when unknown.</summary>
    public static bool TryParse(string name, out TrainingAlgorithm algorithm)
    {
        foreach (var (value, n) in Table)
        {
            if (n == name)
            {
                algorithm = value;
                return true;
            }
        }
        algorithm = default;
        return false;
    }
}
