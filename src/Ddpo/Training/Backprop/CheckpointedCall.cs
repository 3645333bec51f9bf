using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// Gradient checkpointing of one denoiser call (PyTorch's <c>torch.utils.checkpoint</c>, which AlignProp and DRaFT use
/// on the UNet): the forward pass runs without keeping activations; the backward pass runs the call again with
/// gradients and backpropagates through it into the trainable parameters and the input latents. A backward pass
/// through K checkpointed steps then holds one step's activations at a time instead of K.
/// </summary>
/// <remarks>
/// The call must compute the same function when it is recomputed: no dropout or other fresh randomness inside it
/// (the denoisers here have none at their default settings). Gradients of the parameters are accumulated into their
/// <c>.grad</c> directly, as PyTorch's reentrant checkpoint does, so that no parameter-sized gradient tensor waits for
/// the garbage collector; the input's gradient is returned to the autograd engine.
/// </remarks>
internal static class CheckpointedCall
{
    /// <summary>
    /// <paramref name="function"/>(<paramref name="input"/>, <paramref name="captured"/>) whose backward pass recomputes
    /// it. The tensors the call reads besides its input and the module's weights (the time, ...) are passed as
    /// <paramref name="captured"/>: the function gets aliases that live until the backward pass (the caller's may be
    /// freed with its dispose scope before that). Without gradients (or with nothing that requires them) it is the
    /// plain call.
    /// </summary>
    public static Tensor Apply(Func<Tensor, IReadOnlyList<Tensor>, Tensor> function, Tensor input, IReadOnlyList<Tensor> captured,
        IReadOnlyList<Parameter> parameters)
    {
        if (!is_grad_enabled() || (!input.requires_grad && !parameters.Any(p => p.requires_grad))) return function(input, captured);
        // Kept out of every dispose scope until the backward pass, which frees them (or the collector, when the graph is
        // dropped without one).
        var kept = captured.Select(t => t.alias().DetachFromDisposeScope()).ToArray();
        // The parameters are inputs of the node only so that the engine runs its backward when the input latents need
        // no gradient (the first step of a truncated chain).
        var args = new object[2 + parameters.Count];
        args[0] = input;
        args[1] = new State(x => function(x, kept), kept, parameters);
        for (int i = 0; i < parameters.Count; i++) args[2 + i] = parameters[i];
        return Checkpoint.apply(args);
    }

    private sealed record State(Func<Tensor, Tensor> Function, Tensor[] Kept, IReadOnlyList<Parameter> Parameters);

    private sealed class Checkpoint : autograd.SingleTensorFunction<Checkpoint>
    {
        public override string Name => "CheckpointedDenoiserCall";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var input = (Tensor)vars[0];
            var state = (State)vars[1];
            ctx.save_for_backward([input]);
            ctx.save_data("state", state);
            ctx.save_data("count", vars.Length);
            // apply() runs this with gradients off: nothing of the call is kept.
            return state.Function(input);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var state = (State)ctx.get_data("state");
            int count = (int)ctx.get_data("count");
            var saved = ctx.get_saved_variables()[0];
            Tensor inputGrad;
            using (var scope = NewDisposeScope())
            using (enable_grad())
            {
                var x = saved.detach().requires_grad_(true);
                var y = state.Function(x);
                var trainable = state.Parameters.Where(p => p.requires_grad).ToList();
                var grads = autograd.grad([y], [x, .. trainable], [gradOutput], allow_unused: true);
                using (no_grad())
                {
                    for (int i = 0; i < trainable.Count; i++)
                    {
                        var g = grads[i + 1];
                        if (g is null || g.IsInvalid) continue;
                        var p = trainable[i];
                        var existing = p.grad;
                        if (existing is null) p.grad = g;
                        else existing.add_(g);
                    }
                }
                var gx = grads[0];
                inputGrad = gx is null || gx.IsInvalid ? zeros_like(saved) : gx;
                inputGrad.DetachFromDisposeScope();
            }
            saved.Dispose();
            foreach (var t in state.Kept) t.Dispose();
            var result = new List<Tensor>(count) { inputGrad };
            for (int i = 1; i < count; i++) result.Add(null!);
            return result;
        }
    }
}
