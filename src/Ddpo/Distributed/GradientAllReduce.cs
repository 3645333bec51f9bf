using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Distributed;

/// <summary>
/// Sums the trainable parameters' gradients over the ranks before an optimizer step: all gradients are flattened
/// into one float32 buffer, reduced with one <c>MPI_Allreduce</c>, and copied back (a parameter without a gradient,
/// on a rank that had no sample in the step, counts as zeros). One call per optimizer step; the volume is
/// 4 bytes x trainable parameters.
/// <para>
/// Host path. The buffer goes through host memory, which on GPUs costs a device-to-host and a host-to-device copy
/// per step. The GPU path (NCCL's <c>ncclAllReduce</c> on the device buffer, from the <c>libnccl.so.2</c> that
/// PyTorch's CUDA wheels ship, with the unique id broadcast through <see cref="IProcessGroup.Broadcast"/>) is
/// designed in docs/distributed.md and falls back to this class where NCCL is absent.
/// </para>
/// </summary>
internal sealed class GradientAllReduce(IProcessGroup group)
{
    /// <summary>Bytes all-reduced by the last call (0 in a single process).</summary>
    public long LastBytes { get; private set; }

    /// <summary>Seconds the last call spent in the collective (including the host copies).</summary>
    public double LastSeconds { get; private set; }

    /// <summary>Replaces every gradient of <paramref name="parameters"/> by its sum over the ranks (nothing with one rank).</summary>
    public void SumGradients(IReadOnlyList<Parameter> parameters)
    {
        if (group.Size <= 1 || parameters.Count == 0) return;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var device = parameters[0].device;
        var grads = new List<Tensor>(parameters.Count);
        foreach (var p in parameters)
        {
            if (p.grad is null) p.grad = zeros_like(p).MoveToOuterDisposeScope();
            grads.Add(p.grad!.flatten().to(ScalarType.Float32));
        }
        using var flat = cat(grads, 0).cpu().contiguous();
        var host = flat.data<float>().ToArray();
        group.AllReduceSum(host);
        using var summed = tensor(host).to(device);
        long offset = 0;
        foreach (var p in parameters)
        {
            long n = p.numel();
            p.grad!.copy_(summed.narrow(0, offset, n).view_as(p.grad!));
            offset += n;
        }
        LastBytes = host.LongLength * sizeof(float);
        LastSeconds = clock.Elapsed.TotalSeconds;
    }
}
