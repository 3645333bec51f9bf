using Ddpo.Config;
using Ddpo.Policies;

namespace Ddpo.Training;

/// <summary>The strategy of each <c>algorithm</c>.</summary>
internal static class UpdateStrategies
{
    /// <summary>
    /// The strategy of <paramref name="config"/>'s algorithm for <paramref name="policy"/>, with the run's stat
    /// tracker (DDPO's per-prompt advantages; null when off), KL reference (null when <c>train.kl_coef</c> is 0) and, for
    /// <c>nft</c>, DiffusionNFT's old policy.
    /// </summary>
    public static IUpdateStrategy For(DdpoConfig config, IDiffusionPolicy policy, PerPromptStatTracker? tracker, ReferencePolicy? reference,
        NftOldPolicy? nftOld = null) =>
        config.Algorithm switch
        {
            TrainingAlgorithm.DdpoIs => new DdpoIsStrategy(policy, config, reference, tracker),
            TrainingAlgorithm.DdpoSf => new DdpoSfStrategy(policy, config, reference, tracker),
            TrainingAlgorithm.Grpo => new GrpoStrategy(policy, config, reference),
            TrainingAlgorithm.Rwr => new RwrStrategy(policy, config, sparse: false),
            TrainingAlgorithm.RwrSparse => new RwrStrategy(policy, config, sparse: true),
            TrainingAlgorithm.Nft => new NftStrategy(policy, config, nftOld ?? throw new ArgumentNullException(nameof(nftOld), "algorithm = \"nft\" needs its old policy"), reference),
            _ => throw new ArgumentOutOfRangeException(nameof(config), config.Algorithm, "unknown algorithm"),
        };
}
