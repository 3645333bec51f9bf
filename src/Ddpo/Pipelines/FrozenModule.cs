using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Pipelines;

/// <summary>What every policy's <c>FrozenCopy</c> does to its fresh denoiser: take the live weights, freeze, evaluate.</summary>
internal static class FrozenModule
{
    /// <summary>Copies <paramref name="source"/>'s state into <paramref name="copy"/> (same architecture), freezes and returns it in eval mode.</summary>
    public static T CopyOf<T>(T copy, nn.Module source) where T : nn.Module
    {
        using (no_grad())
        {
            var state = source.state_dict();
            foreach (var (name, tensor) in copy.state_dict())
            {
                tensor.copy_(state[name]);
            }
        }
        foreach (var p in copy.parameters()) p.requires_grad = false;
        copy.eval();
        return copy;
    }
}
