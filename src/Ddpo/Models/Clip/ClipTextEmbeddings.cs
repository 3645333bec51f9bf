using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Clip;

/// <summary>
/// transformers' <c>CLIPTextEmbeddings</c>: token plus learned position embeddings. The position ids
/// (transformers' non-persistent <c>position_ids</c> buffer) are made on the fly, so no file needs them.
/// </summary>
internal sealed class ClipTextEmbeddings : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly Embedding token_embedding;
    private readonly Embedding position_embedding;
#pragma warning restore IDE1006

    public ClipTextEmbeddings(int vocabSize, int maxPositions, int hidden, Device? device = null) : base("embeddings")
    {
        token_embedding = nn.Embedding(vocabSize, hidden, device: device);
        position_embedding = nn.Embedding(maxPositions, hidden, device: device);
        RegisterComponents();
    }

    /// <summary>The token-embedding weight [vocab, hidden] (its device and dtype are the model's).</summary>
    public Tensor TokenWeight => token_embedding.weight!;

    public void Initialize(Generator? generator)
    {
        ClipInit.Normal(token_embedding.weight!, 0.02, generator);
        ClipInit.Normal(position_embedding.weight!, 0.02, generator);
    }

    public override Tensor forward(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var positions = arange(inputIds.shape[1], dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0);
        var h = token_embedding.forward(inputIds) + position_embedding.forward(positions);
        return h.MoveToOuterDisposeScope();
    }
}
