using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Schedulers;

namespace Ddpo.Config;

/// <summary>
/// Where an epoch's SDE window lies (<c>sample.sde_window</c>, <c>sample.sde_window_shift</c>,
/// <c>sample.sde_window_shift_every</c>). A fixed window is Flow-GRPO-Fast's; a sliding one is MixGRPO's: the window
/// starts at <c>[start, end)</c> and moves <c>shift</c> steps towards the end every <c>shift_every</c> epochs, stopping
/// where its end reaches <c>num_steps</c>. The position depends on the epoch only, so a resumed run samples and
/// trains the same steps as an uninterrupted one.
/// </summary>
internal static class SdeWindow
{
    /// <summary>The window of <paramref name="epoch"/>, or null when <c>sample.sde_window</c> is empty (every step).</summary>
    public static StepWindow? At(SampleConfig sample, int epoch)
    {
        if (sample.SdeWindow is not [var start, var end]) return null;
        long moves = epoch / Math.Max(1, sample.SdeWindowShiftEvery);
        int shift = (int)Math.Max(0, Math.Min(moves * sample.SdeWindowShift, (long)sample.NumSteps - end));
        return new StepWindow(start + shift, end + shift);
    }

    /// <summary>
    /// The steps trained in <paramref name="epoch"/>: the window's steps among the <paramref name="stochasticSteps"/>
    /// leading stochastic ones (all of those without a window). A window that holds none of them is a
    /// <see cref="ConfigException"/> naming <c>sample.sde_window</c>.
    /// </summary>
    public static StepWindow TrainedSteps(SampleConfig sample, int epoch, int stochasticSteps)
    {
        if (At(sample, epoch) is not { } window) return new StepWindow(0, stochasticSteps);
        var trained = new StepWindow(window.Start, Math.Min(window.End, stochasticSteps));
        if (trained.Width == 0)
        {
            throw new ConfigException($"sample.sde_window: the window {window} of epoch {epoch} holds no stochastic step " +
                $"(only the first {stochasticSteps} of the {sample.NumSteps} steps have a log-probability); move it earlier");
        }
        return trained;
    }
}
