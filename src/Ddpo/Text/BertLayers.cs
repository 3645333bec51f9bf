using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Text;

#pragma warning disable IDE1006 // field names are the transformers state-dict names

/// <summary><c>embeddings</c>: word + absolute position + token type embeddings, then LayerNorm.</summary>
internal sealed class BertEmbeddings : nn.Module
{
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly Embedding token_type_embeddings;
    private readonly LayerNorm LayerNorm;

    public BertEmbeddings(BertConfig c) : base("embeddings")
    {
        word_embeddings = nn.Embedding(c.VocabSize, c.HiddenSize);
        position_embeddings = nn.Embedding(c.MaxPositionEmbeddings, c.HiddenSize);
        token_type_embeddings = nn.Embedding(c.TypeVocabSize, c.HiddenSize);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor inputIds, Tensor tokenTypeIds)
    {
        using var scope = NewDisposeScope();
        var positions = arange(inputIds.shape[1], ScalarType.Int64, inputIds.device).unsqueeze(0);
        var x = word_embeddings.forward(inputIds) + position_embeddings.forward(positions) + token_type_embeddings.forward(tokenTypeIds);
        return LayerNorm.forward(x).MoveToOuterDisposeScope();
    }
}

/// <summary><c>attention.self</c>: query, key and value projections and scaled dot-product attention.</summary>
internal sealed class BertSelfAttention : nn.Module
{
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly int _heads;

    public BertSelfAttention(BertConfig c) : base("self")
    {
        query = nn.Linear(c.HiddenSize, c.HiddenSize);
        key = nn.Linear(c.HiddenSize, c.HiddenSize);
        value = nn.Linear(c.HiddenSize, c.HiddenSize);
        _heads = c.NumAttentionHeads;
        RegisterComponents();
    }

    /// <summary><paramref name="additiveMask"/> is [B, 1, 1, T]: 0 for tokens, a large negative number for padding.</summary>
    public Tensor Forward(Tensor x, Tensor additiveMask)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1], d = x.shape[2];
        Tensor Split(Tensor y) => y.view(b, t, _heads, d / _heads).transpose(1, 2);
        var q = Split(query.forward(x));
        var k = Split(key.forward(x));
        var v = Split(value.forward(x));
        var o = nn.functional.scaled_dot_product_attention(q, k, v, additiveMask);
        return o.transpose(1, 2).reshape(b, t, d).MoveToOuterDisposeScope();
    }
}

/// <summary>A dense layer, then dropout (identity here), residual and LayerNorm (<c>attention.output</c> and <c>output</c>).</summary>
internal sealed class BertResidualOutput : nn.Module
{
    private readonly Linear dense;
    private readonly LayerNorm LayerNorm;

    public BertResidualOutput(int inFeatures, BertConfig c, string name) : base(name)
    {
        dense = nn.Linear(inFeatures, c.HiddenSize);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor residual)
    {
        using var scope = NewDisposeScope();
        return LayerNorm.forward(dense.forward(hidden) + residual).MoveToOuterDisposeScope();
    }
}

/// <summary><c>attention</c>: <c>self</c> and <c>output</c>.</summary>
internal sealed class BertAttention : nn.Module
{
    private readonly BertSelfAttention self;
    private readonly BertResidualOutput output;

    public BertAttention(BertConfig c) : base("attention")
    {
        self = new BertSelfAttention(c);
        output = new BertResidualOutput(c.HiddenSize, c, "output");
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor mask)
    {
        using var scope = NewDisposeScope();
        return output.Forward(self.Forward(x, mask), x).MoveToOuterDisposeScope();
    }
}

/// <summary><c>intermediate</c>: the feed-forward expansion and activation.</summary>
internal sealed class BertIntermediate : nn.Module
{
    private readonly Linear dense;
    private readonly bool _relu;

    public BertIntermediate(BertConfig c) : base("intermediate")
    {
        dense = nn.Linear(c.HiddenSize, c.IntermediateSize);
        _relu = c.HiddenAct == "relu";
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = dense.forward(x);
        return (_relu ? nn.functional.relu(h) : nn.functional.gelu(h)).MoveToOuterDisposeScope();
    }
}

/// <summary><c>encoder.layer.N</c>: attention, then the feed-forward block.</summary>
internal sealed class BertLayer : nn.Module
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertResidualOutput output;

    public BertLayer(BertConfig c) : base("layer")
    {
        attention = new BertAttention(c);
        intermediate = new BertIntermediate(c);
        output = new BertResidualOutput(c.IntermediateSize, c, "output");
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var a = attention.Forward(x, mask);
        return output.Forward(intermediate.Forward(a), a).MoveToOuterDisposeScope();
    }
}

/// <summary><c>encoder</c>: the stack of layers.</summary>
internal sealed class BertEncoder : nn.Module
{
    private readonly ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig c) : base("encoder")
    {
        layer = new ModuleList<BertLayer>(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new BertLayer(c)).ToArray());
        RegisterComponents();
    }

    public BertLayer this[int index] => layer[index];
}

#pragma warning restore IDE1006
