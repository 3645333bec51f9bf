namespace Ddpo.Schedulers;

/// <summary>
/// A half-open range <c>[Start, End)</c> of denoising step indices (0 = the first, noisiest step): the steps of a
/// trajectory that are stochastic and trained when sampling with an SDE window (MixGRPO, Flow-GRPO-Fast).
/// </summary>
/// <param name="Start">The first step inside.</param>
/// <param name="End">The first step after the window.</param>
public readonly record struct StepWindow(int Start, int End)
{
    /// <summary>Number of steps inside.</summary>
    public int Width => Math.Max(0, End - Start);

    /// <summary>True when step <paramref name="step"/> lies inside.</summary>
    public bool Contains(int step) => step >= Start && step < End;

    /// <inheritdoc />
    public override string ToString() => $"[{Start}, {End})";
}
