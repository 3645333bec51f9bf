using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Models.Lora;

/// <summary>
/// One low-rank adapter: <c>delta(x) = scale * up(down(x))</c> with <c>down</c> [rank, in] and <c>up</c> [out, rank].
/// Its parameters are float32 whatever the base layer's dtype; they are not part of the base module's state dict.
/// </summary>
internal sealed class LoraAdapter : IDisposable
{
    /// <summary>The down projection weight [rank, in_features] (float32, trainable).</summary>
    public Parameter Down { get; private set; }

    /// <summary>The up projection weight [out_features, rank] (float32, trainable).</summary>
    public Parameter Up { get; private set; }

    /// <summary>The factor applied to the adapter's output (alpha / rank).</summary>
    public double Scale { get; }

    /// <summary>
    /// False while the adapter is switched off (<see cref="LoraAdapters.Disable"/>): the layer then computes its base
    /// output only, e.g. for the KL penalty's base model, without a second copy of the UNet.
    /// </summary>
    public bool Enabled { get; internal set; } = true;

    /// <summary>The adapter's rank.</summary>
    public int Rank => (int)Down.shape[0];

    /// <summary>Wraps the given float32 weights (taken over, not copied) as trainable parameters.</summary>
    public LoraAdapter(Tensor down, Tensor up, double scale)
    {
        if (down.dim() != 2 || up.dim() != 2 || up.shape[1] != down.shape[0])
        {
            throw new ArgumentException($"LoRA weights must be down [r, in] and up [out, r]; got down [{string.Join(", ", down.shape)}], up [{string.Join(", ", up.shape)}]");
        }
        Down = new Parameter(down, requires_grad: true);
        Up = new Parameter(up, requires_grad: true);
        Down.DetachFromDisposeScope();
        Up.DetachFromDisposeScope();
        Scale = scale;
    }

    /// <summary>The adapter's contribution for input <paramref name="x"/>, computed in float32 and returned in x's dtype.</summary>
    public Tensor Delta(Tensor x)
    {
        var input = x.dtype == Down.dtype ? x : x.to(Down.dtype);
        var delta = F.linear(F.linear(input, Down), Up);
        if (Scale != 1.0) delta = delta * Scale;
        return delta.dtype == x.dtype ? delta : delta.to(x.dtype);
    }

    /// <summary>The dense update <c>scale * up @ down</c> [out, in] in float32.</summary>
    public Tensor DenseDelta()
    {
        using (no_grad())
        {
            var w = Up.matmul(Down);
            return Scale == 1.0 ? w : w.mul_(Scale);
        }
    }

    /// <summary>Moves the parameters to <paramref name="device"/> (new parameter objects; rebuild optimizers afterwards).</summary>
    public void MoveTo(Device device)
    {
        if (Down.device_type == device.type && (device.index < 0 || Down.device_index == device.index)) return;
        var down = new Parameter(Down.detach().to(device, copy: true), Down.requires_grad);
        var up = new Parameter(Up.detach().to(device, copy: true), Up.requires_grad);
        down.DetachFromDisposeScope();
        up.DetachFromDisposeScope();
        Down.Dispose();
        Up.Dispose();
        Down = down;
        Up = up;
    }

    /// <summary>Releases the parameters.</summary>
    public void Dispose()
    {
        Down.Dispose();
        Up.Dispose();
    }
}
