namespace Ddpo.Diagnostics;

/// <summary>One timed row of the GPU check (ours or PyTorch's, matched by <see cref="Key"/>).</summary>
/// <param name="Key">Stable name shared with <c>tools/gpu/torch_bench.py</c>, e.g. <c>unet_forward_fp16_b16</c>.</param>
/// <param name="What">Human description (model, batch, precision).</param>
/// <param name="Ms">Median wall time of one call in milliseconds (for the epoch: the whole epoch).</param>
/// <param name="Extra">Other figures: TFLOP/s, seconds per phase, peak memory in GiB, ...</param>
internal sealed record SpeedRow(string Key, string What, double Ms, IReadOnlyDictionary<string, double> Extra);
