using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.T5;

/// <summary>
/// transformers' <c>T5Attention</c> for the encoder (bidirectional self-attention): no 1/√d scaling, a learned
/// relative-position bias (only the first block owns <c>relative_attention_bias</c>; the others reuse its bias) added
/// to the scores, softmax in float32. Plain matmuls: the scores need the additive bias and no scaling.
/// </summary>
internal sealed class T5Attention : nn.Module<Tensor, Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly Linear q;
    private readonly Linear k;
    private readonly Linear v;
    private readonly Linear o;
    private readonly Embedding? relative_attention_bias;
#pragma warning restore IDE1006
    private readonly int _heads;
    private readonly int _dKv;
    private readonly int _numBuckets;
    private readonly int _maxDistance;

    public T5Attention(T5Config config, bool hasRelativeBias, Device? device) : base("SelfAttention")
    {
        int inner = config.NumHeads * config.DKv;
        q = nn.Linear(config.DModel, inner, hasBias: false, device: device);
        k = nn.Linear(config.DModel, inner, hasBias: false, device: device);
        v = nn.Linear(config.DModel, inner, hasBias: false, device: device);
        o = nn.Linear(inner, config.DModel, hasBias: false, device: device);
        if (hasRelativeBias) relative_attention_bias = nn.Embedding(config.RelativeAttentionNumBuckets, config.NumHeads, device: device);
        _heads = config.NumHeads;
        _dKv = config.DKv;
        _numBuckets = config.RelativeAttentionNumBuckets;
        _maxDistance = config.RelativeAttentionMaxDistance;
        RegisterComponents();
    }

    /// <summary>transformers' <c>_init_weights</c>: q std (d_model·d_kv)^-½, k/v std d_model^-½, o std (heads·d_kv)^-½, bias std d_model^-½.</summary>
    public void Initialize(double factor, Generator? generator)
    {
        long d = q.weight!.shape[1];
        using (no_grad())
        {
            nn.init.normal_(q.weight!, 0, factor * Math.Pow(d * _dKv, -0.5), generator);
            nn.init.normal_(k.weight!, 0, factor * Math.Pow(d, -0.5), generator);
            nn.init.normal_(v.weight!, 0, factor * Math.Pow(d, -0.5), generator);
            nn.init.normal_(o.weight!, 0, factor * Math.Pow(_heads * _dKv, -0.5), generator);
            if (relative_attention_bias is not null) nn.init.normal_(relative_attention_bias.weight!, 0, factor * Math.Pow(d, -0.5), generator);
        }
    }

    /// <summary>
    /// transformers' bidirectional <c>_relative_position_bucket</c> of (key − query) positions [q, k]: half the buckets
    /// per direction; distances below a quarter of the buckets are exact, larger ones log-spaced up to max_distance,
    /// beyond it clamped to the last bucket.
    /// </summary>
    public static Tensor RelativePositionBucket(Tensor relativePosition, int numBuckets, int maxDistance)
    {
        using var scope = NewDisposeScope();
        int half = numBuckets / 2;
        var buckets = relativePosition.gt(0).to(ScalarType.Int64) * half;
        var distance = relativePosition.abs();
        int maxExact = half / 2;
        var isSmall = distance.lt(maxExact);
        // Same float32 ops as transformers, so the bucket edges fall on the same distances.
        var large = (distance.to(ScalarType.Float32) / maxExact).log() / Math.Log(maxDistance / (double)maxExact) * (half - maxExact);
        var ifLarge = (large.to(ScalarType.Int64) + maxExact).clamp_max(half - 1);
        return (buckets + torch.where(isSmall, distance, ifLarge)).MoveToOuterDisposeScope();
    }

    /// <summary>The position bias [1, heads, q, k] of this block's <c>relative_attention_bias</c> (first block only).</summary>
    public Tensor ComputeBias(long queryLength, long keyLength)
    {
        var table = relative_attention_bias ?? throw new InvalidOperationException("only the first T5 block has relative_attention_bias");
        using var scope = NewDisposeScope();
        var device = table.weight!.device;
        var context = arange(queryLength, dtype: ScalarType.Int64, device: device).unsqueeze(1);
        var memory = arange(keyLength, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        var buckets = RelativePositionBucket(memory - context, _numBuckets, _maxDistance);
        var values = table.forward(buckets); // [q, k, heads]
        return values.permute(2, 0, 1).unsqueeze(0).MoveToOuterDisposeScope();
    }

    /// <summary>Self-attention of <paramref name="x"/> [B, S, d_model] with the additive <paramref name="positionBias"/> (bias plus mask).</summary>
    public override Tensor forward(Tensor x, Tensor positionBias)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], s = x.shape[1];
        Tensor Heads(Tensor t) => t.view(b, s, _heads, _dKv).transpose(1, 2);
        var qh = Heads(q.forward(x));
        var kh = Heads(k.forward(x));
        var vh = Heads(v.forward(x));
        var scores = torch.matmul(qh, kh.transpose(2, 3)) + positionBias;
        var weights = nn.functional.softmax(scores.to(ScalarType.Float32), -1).to(scores.dtype);
        var merged = torch.matmul(weights, vh).transpose(1, 2).reshape(b, s, _heads * _dKv);
        return o.forward(merged).MoveToOuterDisposeScope();
    }
}
