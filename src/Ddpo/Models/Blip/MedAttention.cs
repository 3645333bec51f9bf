using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Blip;

#pragma warning disable IDE1006 // field names are the state-dict names

/// <summary>
/// med.py <c>BertSelfAttention</c>: queries from the text, keys and values from the text (self-attention) or from the
/// image tokens (cross-attention, whose key/value projections take <c>encoder_width</c> inputs).
/// </summary>
internal sealed class MedSelfAttention : nn.Module
{
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly int _heads;

    public MedSelfAttention(MedConfig c, int keyValueWidth, Device? device = null) : base("self")
    {
        query = nn.Linear(c.HiddenSize, c.HiddenSize, device: device);
        key = nn.Linear(keyValueWidth, c.HiddenSize, device: device);
        value = nn.Linear(keyValueWidth, c.HiddenSize, device: device);
        _heads = c.NumAttentionHeads;
        RegisterComponents();
    }

    /// <summary>
    /// Attends from <paramref name="x"/> [B, T, hidden] to <paramref name="context"/> [B, S, kv width];
    /// <paramref name="additiveMask"/> ([B, 1, 1, S], 0 or -10000) is added to the scores, or null for none.
    /// </summary>
    public Tensor Forward(Tensor x, Tensor context, Tensor? additiveMask)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], d = x.shape[2];
        Tensor Split(Tensor y) => y.view(b, y.shape[1], _heads, d / _heads).transpose(1, 2);
        var q = Split(query.forward(x));
        var k = Split(key.forward(context));
        var v = Split(value.forward(context));
        var o = nn.functional.scaled_dot_product_attention(q, k, v, additiveMask);
        return o.transpose(1, 2).reshape(b, x.shape[1], d).MoveToOuterDisposeScope();
    }
}

/// <summary>med.py <c>BertSelfOutput</c> / <c>BertOutput</c>: dense, dropout (identity here), LayerNorm of the sum with the residual.</summary>
internal sealed class MedOutput : nn.Module
{
    private readonly Linear dense;
    private readonly LayerNorm LayerNorm;

    public MedOutput(int inFeatures, MedConfig c, Device? device = null) : base("output")
    {
        dense = nn.Linear(inFeatures, c.HiddenSize, device: device);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor residual)
    {
        using var scope = NewDisposeScope();
        return LayerNorm.forward(dense.forward(hidden) + residual).MoveToOuterDisposeScope();
    }
}

/// <summary>med.py <c>BertAttention</c> (<c>attention</c> or <c>crossattention</c>): <c>self</c>, then <c>output</c>.</summary>
internal sealed class MedAttention : nn.Module
{
    private readonly MedSelfAttention self;
    private readonly MedOutput output;

    public MedAttention(MedConfig c, int keyValueWidth, string name, Device? device = null) : base(name)
    {
        self = new MedSelfAttention(c, keyValueWidth, device);
        output = new MedOutput(c.HiddenSize, c, device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor context, Tensor? additiveMask)
    {
        using var scope = NewDisposeScope();
        return output.Forward(self.Forward(x, context, additiveMask), x).MoveToOuterDisposeScope();
    }
}

/// <summary>med.py <c>BertIntermediate</c>: dense then exact GELU.</summary>
internal sealed class MedIntermediate : nn.Module
{
    private readonly Linear dense;

    public MedIntermediate(MedConfig c, Device? device = null) : base("intermediate")
    {
        dense = nn.Linear(c.HiddenSize, c.IntermediateSize, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return nn.functional.gelu(dense.forward(x)).MoveToOuterDisposeScope();
    }
}

#pragma warning restore IDE1006
