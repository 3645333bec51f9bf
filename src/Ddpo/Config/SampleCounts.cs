using System.Globalization;

namespace Ddpo.Config;

/// <summary>
/// How many samples an epoch and an optimizer step take, over all processes and per process, as
/// ddpo-pytorch's <c>train.py</c> counts them: samples per epoch =
/// <c>num_processes * sample.batch_size * sample.num_batches_per_epoch</c>, samples per optimizer step
/// ("total train batch size") = <c>num_processes * train.batch_size * train.gradient_accumulation_steps</c>.
/// </summary>
/// <param name="WorldSize">Processes (devices) sharing the epoch.</param>
/// <param name="SampleBatchSize"><c>sample.batch_size</c> (per process).</param>
/// <param name="NumBatchesPerEpoch"><c>sample.num_batches_per_epoch</c> (per process).</param>
/// <param name="TrainBatchSize"><c>train.batch_size</c> (per process).</param>
/// <param name="GradientAccumulationSteps"><c>train.gradient_accumulation_steps</c> (per process).</param>
/// <param name="OptimizerStepsPerEpoch">Optimizer steps an epoch takes (all inner epochs; DDPO-SF takes one per inner epoch).</param>
public sealed record SampleCounts(
    int WorldSize, int SampleBatchSize, int NumBatchesPerEpoch, int TrainBatchSize, int GradientAccumulationSteps, int OptimizerStepsPerEpoch)
{
    /// <summary>The key stating the samples per epoch over all processes.</summary>
    public const string SamplesPerEpochKey = "sample.samples_per_epoch";

    /// <summary>The key stating the samples per optimizer step over all processes.</summary>
    public const string TotalBatchSizeKey = "train.total_batch_size";

    /// <summary>The per-process key that <see cref="SamplesPerEpochKey"/> decides.</summary>
    public const string NumBatchesPerEpochKey = "sample.num_batches_per_epoch";

    /// <summary>The per-process key that <see cref="TotalBatchSizeKey"/> decides.</summary>
    public const string GradientAccumulationStepsKey = "train.gradient_accumulation_steps";

    /// <summary>Each total and the per-process count derived from it.</summary>
    public static readonly IReadOnlyList<(string Total, string PerProcess)> TotalKeys =
        [(SamplesPerEpochKey, NumBatchesPerEpochKey), (TotalBatchSizeKey, GradientAccumulationStepsKey)];

    /// <summary>Samples one process draws per epoch.</summary>
    public int SamplesPerEpochPerProcess => SampleBatchSize * NumBatchesPerEpoch;

    /// <summary>Samples per epoch over all processes (ddpo-pytorch's "Total number of samples per epoch").</summary>
    public int SamplesPerEpoch => WorldSize * SamplesPerEpochPerProcess;

    /// <summary>Samples one process contributes to an optimizer step.</summary>
    public int SamplesPerStepPerProcess => TrainBatchSize * GradientAccumulationSteps;

    /// <summary>Samples per optimizer step over all processes (ddpo-pytorch's "Total train batch size").</summary>
    public int SamplesPerStep => WorldSize * SamplesPerStepPerProcess;

    /// <summary>
    /// One line: the totals, then what each process does, e.g. "256 samples per epoch, 64 per optimizer step,
    /// 4 optimizer steps per epoch; per process (1 process): 32 batches of 8 samples, 16 accumulation steps of 4".
    /// </summary>
    public string Summary() => string.Create(CultureInfo.InvariantCulture,
        $"{SamplesPerEpoch} samples per epoch, {SamplesPerStep} per optimizer step, {OptimizerStepsPerEpoch} optimizer " +
        $"step{(OptimizerStepsPerEpoch == 1 ? "" : "s")} per epoch; per process ({Processes(WorldSize)}): " +
        $"{NumBatchesPerEpoch} batch{(NumBatchesPerEpoch == 1 ? "" : "es")} of {SampleBatchSize} samples, " +
        $"{GradientAccumulationSteps} accumulation step{(GradientAccumulationSteps == 1 ? "" : "s")} of {TrainBatchSize}");

    /// <summary>"1 process", "8 processes".</summary>
    internal static string Processes(int n) => n == 1 ? "1 process" : $"{n} processes";
}
