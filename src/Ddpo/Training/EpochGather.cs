using Ddpo.Distributed;
using System.Text.Json;
using Ddpo.Training;
using Ddpo.Policies;
using static TorchSharp.torch;

namespace Ddpo.Training;

/// <summary>
/// Collects every rank's share of an epoch into the whole epoch, on every rank, in global sample order (rank 0's
/// samples first): prompts, metadata, rewards and reward components, and the trajectories. With the whole epoch
/// everywhere, advantages (per-prompt statistics included, whichever rank sampled a prompt group's members), the
/// NaN filter, RWR's weights and percentile, the shuffle and each sample's step permutation are computed exactly
/// as one process computes them, and each rank then trains on its part of every optimizer step
/// (<see cref="DataParallel.Shard"/>). The cost: each rank holds the epoch's trajectories, as one process would.
/// </summary>
internal static class EpochGather
{
    /// <summary>The whole epoch from each rank's <paramref name="local"/> share (a copy; the caller keeps <paramref name="local"/>).</summary>
    public static EpochSamples Gather(IProcessGroup group, EpochSamples local)
    {
        var header = group.AllGatherBytes(JsonSerializer.SerializeToUtf8Bytes(new Header(
            local.Prompts, local.Metadata.Select(m => m.ToDictionary(kv => kv.Key, kv => kv.Value)).ToArray(),
            local.Rewards, local.RewardDetails.ToDictionary(kv => kv.Key, kv => kv.Value), local.Groups), Json))
            .Select(b => JsonSerializer.Deserialize<Header>(b, Json) ?? throw new InvalidDataException("empty epoch header from a rank")).ToArray();
        var detailKeys = header.SelectMany(h => h.Details.Keys).Distinct().OrderBy(k => k, StringComparer.Ordinal).ToArray();
        using var scope = NewDisposeScope();
        var device = local.Latents.device;
        var samples = new EpochSamples
        {
            Prompts = header.SelectMany(h => h.Prompts).ToArray(),
            Metadata = header.SelectMany(h => h.Metadata.Select(m => (IReadOnlyDictionary<string, string>)m)).ToArray(),
            Rewards = header.SelectMany(h => h.Rewards).ToArray(),
            // Group ids are global (the sampler numbers them by global sample index), so a group split across ranks
            // stays one group.
            Groups = header.All(h => h.Groups is not null) ? header.SelectMany(h => h.Groups!).ToArray() : null,
            RewardDetails = detailKeys.ToDictionary(k => k, k => header.SelectMany(h =>
                h.Details.TryGetValue(k, out var v) ? v : Enumerable.Repeat(float.NaN, h.Rewards.Length)).ToArray()),
            Condition = Gather(group, local.Condition, device).MoveToOuterDisposeScope(),
            Unconditional = GatherOptional(group, local.Unconditional, device)?.MoveToOuterDisposeScope(),
            Times = Concat(group, local.Times, device).MoveToOuterDisposeScope(),
            Latents = Concat(group, local.Latents, device).MoveToOuterDisposeScope(),
            NextLatents = Concat(group, local.NextLatents, device).MoveToOuterDisposeScope(),
            LogProbs = Concat(group, local.LogProbs, device).MoveToOuterDisposeScope(),
        };
        return samples;
    }

    /// <summary>Every rank's rows of each conditioning part, in rank order (the parts in the same order on every rank).</summary>
    private static Conditioning Gather(IProcessGroup group, Conditioning local, Device device) =>
        new(local.Parts.ToDictionary(kv => kv.Key, kv => Concat(group, kv.Value, device)));

    private static Conditioning? GatherOptional(IProcessGroup group, Conditioning? local, Device device)
    {
        // Every rank samples with the same guidance, so either all have negative embeddings or none has.
        var present = group.AllGather(local is null ? 0 : 1);
        if (present.Distinct().Count() > 1)
        {
            throw new InvalidOperationException($"rank {group.Rank}: ranks disagree on classifier-free guidance (negative embeddings present on ranks {string.Join(", ", present.Select((p, r) => (p, r)).Where(x => x.p == 1).Select(x => x.r))})");
        }
        return local is null ? null : Gather(group, local, device);
    }

    /// <summary>Concatenates every rank's <paramref name="local"/> along dimension 0 (same dtype and trailing shape).</summary>
    private static Tensor Concat(IProcessGroup group, Tensor local, Device device)
    {
        using var host = local.detach().cpu().contiguous();
        var parts = group.AllGatherBytes(host.bytes);
        var rows = group.AllGather(local.shape[0]);
        var trailing = local.shape[1..];
        var pieces = new List<Tensor>();
        for (int r = 0; r < parts.Length; r++)
        {
            var piece = empty([rows[r], .. trailing], dtype: local.dtype);
            if (piece.NumberOfElements * piece.ElementSize != parts[r].Length)
            {
                throw new InvalidDataException($"rank {r} sent {parts[r].Length} bytes for a [{rows[r]}, {string.Join(", ", trailing)}] {local.dtype} tensor");
            }
            piece.bytes = parts[r];
            pieces.Add(piece);
        }
        return cat(pieces, 0).to(device);
    }

    // NaN rewards (a broken reward) must cross as they are: the trainer drops them from the update and counts them.
    private static readonly JsonSerializerOptions Json = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    private sealed record Header(string[] Prompts, Dictionary<string, string>[] Metadata, float[] Rewards, Dictionary<string, float[]> Details, long[]? Groups);
}
