using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Distributed;

/// <summary>
/// A 64-bit FNV-1a hash of the exact bytes of the trainable parameters, compared across ranks once per epoch:
/// every rank applies the same all-reduced gradient to the same weights, so the weights must stay bit-identical;
/// a difference (a rank that skipped a step, non-deterministic kernels, different hardware) stops the run.
/// </summary>
internal static class WeightsChecksum
{
    /// <summary>The hash of <paramref name="parameters"/>' values, in order.</summary>
    public static ulong Of(IEnumerable<Parameter> parameters)
    {
        ulong h = 14695981039346656037UL;
        using var _ = no_grad();
        foreach (var p in parameters)
        {
            using var host = p.detach().cpu().contiguous();
            foreach (byte b in host.bytes)
            {
                h = (h ^ b) * 1099511628211UL;
            }
        }
        return h;
    }

    /// <summary>
    /// Gathers every rank's checksum of <paramref name="parameters"/> and throws, naming the ranks whose weights
    /// differ from rank 0's, when they are not all equal. Every rank must call it.
    /// </summary>
    public static void Verify(IProcessGroup group, IEnumerable<Parameter> parameters, int epoch)
    {
        if (group.Size <= 1) return;
        var all = group.AllGather((long)Of(parameters));
        var differing = Enumerable.Range(1, all.Length - 1).Where(r => all[r] != all[0]).ToArray();
        if (differing.Length > 0)
        {
            throw new WeightsDivergedException(
                $"after epoch {epoch} the trainable weights of rank{(differing.Length > 1 ? "s" : "")} {string.Join(", ", differing)} " +
                $"differ from rank 0's (checksums {string.Join(", ", all.Select((c, r) => $"rank {r}: {(ulong)c:x16}"))}); " +
                "the ranks no longer train the same model, so the run stops (the last checkpoint is intact)");
        }
    }
}

/// <summary>The ranks' weights differ after an epoch (see <see cref="WeightsChecksum.Verify"/>).</summary>
public sealed class WeightsDivergedException(string message) : Exception(message);
