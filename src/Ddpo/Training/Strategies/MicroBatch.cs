using Ddpo.Policies;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// One micro-batch of an update: rows [<see cref="Start"/>, <see cref="Start"/> + <see cref="Count"/>) of the
/// inner epoch's shuffled samples at trained step column <see cref="Step"/>.
/// </summary>
/// <param name="Samples">The inner epoch's samples, shuffled (and, for a transition loss, their trained steps permuted).</param>
/// <param name="Weights">The shuffled samples' weights.</param>
/// <param name="Start">The first row.</param>
/// <param name="Count">Rows.</param>
/// <param name="Step">The step column.</param>
/// <param name="Generator">The inner epoch's generator (RWR draws its timesteps and noise from it).</param>
/// <param name="First">True for the epoch's first micro-step on this process.</param>
internal sealed record MicroBatch(EpochSamples Samples, float[] Weights, int Start, int Count, int Step, Generator Generator, bool First)
{
    /// <summary>The rows as an index.</summary>
    public TensorIndex Rows => TensorIndex.Slice(Start, Start + Count);

    /// <summary>The rows' weights as a tensor on <paramref name="device"/>.</summary>
    public Tensor WeightTensor(Device device) => tensor(Weights[Start..(Start + Count)], device: device);

    /// <summary>The rows' recorded transitions at <see cref="Step"/>, with the unconditional conditioning when <paramref name="guided"/>.</summary>
    public TransitionBatch Transitions(bool guided)
    {
        var s = Samples;
        return new TransitionBatch(s.Latents[Rows, Step], s.NextLatents[Rows, Step], s.Times[Rows, Step],
            s.Condition.Slice(Start, Start + Count), guided ? s.Unconditional?.Slice(Start, Start + Count) : null);
    }
}
