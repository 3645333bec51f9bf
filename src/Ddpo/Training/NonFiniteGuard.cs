using Ddpo.Distributed;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// The non-finite guard of the optimizer steps, in every precision (the <see cref="LossScaler"/> alone guarded only
/// under fp16 loss scaling). Before each step one fused check, read with a single device sync, tells whether the
/// (unscaled) gradients and the step's loss are finite and whether the weights left by the previous step are; a step
/// with non-finite loss or gradients is skipped (weights and AdamW state untouched) and counted. The weights after a
/// step are checked on the device right away and read with the next step's check (or by <see cref="Flush"/> at the
/// end of the training phase, before anything is saved), so a normal step costs one sync and no extra arithmetic on
/// the weights. Non-finite weights, or <c>train.max_skipped_steps</c> skipped steps in a row, stop the run
/// (<see cref="NonFiniteStepException"/>). Under loss scaling, a skip with a finite loss while the scale is above 1
/// is the scaler backing off (fp16 overflow at the current scale, GradScaler's normal operation) and does not count
/// toward the limit.
/// </summary>
internal sealed class NonFiniteGuard(int maxSkippedInARow)
{
    private Tensor? _weightsFinite;
    private int _stepOfPendingCheck;

    /// <summary>Skipped steps in a row that count toward the limit (across epochs).</summary>
    public int SkippedInARow { get; private set; }

    /// <summary>The limit (<c>train.max_skipped_steps</c>).</summary>
    public int MaxSkippedInARow { get; } = maxSkippedInARow >= 1 ? maxSkippedInARow : throw new ArgumentOutOfRangeException(nameof(maxSkippedInARow));

    /// <summary>Whether every tensor of <paramref name="tensors"/> is finite, as one scalar bool on the device (no sync); null when there are none.</summary>
    public static Tensor? AllFinite(IEnumerable<Tensor> tensors)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var flags = tensors.Select(t => t.isfinite().all()).ToList();
        if (flags.Count == 0) return null;
        var device = flags[0].device;
        return (flags.Count == 1 ? flags[0].clone() : stack(flags.Select(f => f.to(device)).ToList()).all()).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The check before optimizer step <paramref name="step"/> of <paramref name="epoch"/>: whether the gradients of
    /// <paramref name="parameters"/> (already unscaled) and <paramref name="stepLoss"/> (the sum of the step's
    /// losses on this rank; null: none) are finite, in one sync with the pending check of the weights. Throws a
    /// <see cref="NonFiniteStepException"/> when the weights left by the previous step are not finite.
    /// With several processes the loss flag is agreed over the ranks (<paramref name="parallel"/>).
    /// </summary>
    public (bool Gradients, bool Loss) BeforeStep(IReadOnlyList<Parameter> parameters, Tensor? stepLoss, DataParallel parallel, int epoch, int step)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var device = parameters.Count > 0 ? parameters[0].device : CPU;
        var parts = new List<Tensor>(3);
        var grads = AllFinite(parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!));
        parts.Add(grads?.to(device) ?? tensor(true, device: device));
        parts.Add(stepLoss is null ? tensor(true, device: device) : stepLoss.isfinite().all().to(device));
        var pending = _weightsFinite;
        _weightsFinite = null;
        if (pending is not null) parts.Add(pending.to(device));
        bool[] flags;
        try
        {
            flags = stack(parts).cpu().data<bool>().ToArray(); // the step's one sync
        }
        finally
        {
            pending?.Dispose();
        }
        if (pending is not null && !flags[2])
        {
            throw WeightsNotFinite(epoch);
        }
        bool loss = flags[1];
        if (parallel.Group.Size > 1)
        {
            var nonFinite = new[] { loss ? 0.0 : 1.0 };
            parallel.Sum(nonFinite);
            loss = nonFinite[0] == 0;
        }
        return (flags[0], loss);
    }

    /// <summary>After a taken step: starts the check of the new weights on the device (read with the next check).</summary>
    public void AfterStep(IReadOnlyList<Parameter> parameters, int step)
    {
        _weightsFinite?.Dispose();
        _weightsFinite = AllFinite(parameters);
        _weightsFinite?.DetachFromDisposeScope();
        _stepOfPendingCheck = step;
    }

    /// <summary>
    /// Counts a step (taken, or skipped: <paramref name="counts"/> says whether the skip counts toward the limit);
    /// throws a <see cref="NonFiniteStepException"/> once <see cref="MaxSkippedInARow"/> counted skips come in a row.
    /// </summary>
    public void Count(bool taken, bool counts, string what, int epoch)
    {
        if (taken)
        {
            SkippedInARow = 0;
            return;
        }
        if (!counts) return;
        if (++SkippedInARow >= MaxSkippedInARow)
        {
            throw new NonFiniteStepException(epoch,
                $"{SkippedInARow} optimizer steps in a row were skipped (train.max_skipped_steps = {MaxSkippedInARow}), the last in epoch {epoch}, because {what} not finite");
        }
    }

    /// <summary>Reads the pending check of the weights after the phase's last step; throws when they are not finite.</summary>
    public void Flush(int epoch)
    {
        var pending = _weightsFinite;
        _weightsFinite = null;
        if (pending is null) return;
        bool finite;
        using (pending)
        {
            finite = pending.item<bool>();
        }
        if (!finite)
        {
            throw WeightsNotFinite(epoch);
        }
    }

    private NonFiniteStepException WeightsNotFinite(int epoch) =>
        new(epoch, $"the trainable weights became non-finite (NaN/inf) after optimizer step {_stepOfPendingCheck} of epoch {epoch}");

    /// <summary>Drops a pending check (the phase ended by an exception).</summary>
    public void Discard()
    {
        _weightsFinite?.Dispose();
        _weightsFinite = null;
    }
}

/// <summary>Training cannot go on: the weights became non-finite, or too many steps in a row were skipped (<see cref="NonFiniteGuard"/>).</summary>
internal sealed class NonFiniteStepException(int epoch, string what) : Exception(what)
{
    /// <summary>The epoch it happened in.</summary>
    public int Epoch { get; } = epoch;

    /// <summary>What was non-finite.</summary>
    public string What { get; } = what;
}

/// <summary>
/// The run stopped because training became non-finite (<see cref="NonFiniteGuard"/>); nothing non-finite was saved
/// and the message names the last good checkpoint and what to try. The CLI exits with code 3.
/// </summary>
public sealed class TrainingStoppedException(string message, int epoch, string? checkpoint, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The epoch training stopped in.</summary>
    public int Epoch { get; } = epoch;

    /// <summary>The newest (good) checkpoint left in the run folder, or null when none was written yet.</summary>
    public string? Checkpoint { get; } = checkpoint;
}
