using static TorchSharp.torch;

namespace Ddpo.Benchmarks;

/// <summary>
/// One row of the side-by-side speed table (<c>tools/cpu/side_by_side.sh</c>): a call that PyTorch + diffusers
/// (<c>tools/cpu/torch_rows.py</c>) times on the same weights and the same inputs.
/// </summary>
/// <param name="Name">Row id, shared with the PyTorch side (e.g. <c>unet_fwd_b32</c>).</param>
/// <param name="Description">What the call is, for the table.</param>
/// <param name="Flops">FLOPs of one call (2 per multiply-add), counted as <see cref="FlopFormula"/> says.</param>
/// <param name="FlopFormula">How <paramref name="Flops"/> was computed.</param>
/// <param name="Call">The timed call (disposes what it makes).</param>
/// <param name="Inputs">The row's input tensors, written for the PyTorch side as <c>NAME.key</c>.</param>
/// <param name="Owned">The models and tensors to dispose with the row.</param>
internal sealed record SideBySideRow(string Name, string Description, double Flops, string FlopFormula, Action Call,
    IReadOnlyDictionary<string, Tensor> Inputs, IReadOnlyList<IDisposable> Owned) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var d in Owned) d.Dispose();
        foreach (var t in Inputs.Values) t.Dispose();
    }
}
