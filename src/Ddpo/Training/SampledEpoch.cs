namespace Ddpo.Training;

/// <summary>What the sampling phase of an epoch made and measured.</summary>
/// <param name="Samples">The trajectories with their rewards (the caller owns them).</param>
/// <param name="SamplingSeconds">Seconds spent sampling (0 when samples kept from an interrupted run were scored).</param>
/// <param name="RewardSeconds">Seconds spent computing rewards (summed over batches, may overlap sampling).</param>
/// <param name="PromptsEncoded">Distinct prompts the text encoders encoded (the negative prompt included).</param>
internal sealed record SampledEpoch(EpochSamples Samples, double SamplingSeconds, double RewardSeconds, int PromptsEncoded);
