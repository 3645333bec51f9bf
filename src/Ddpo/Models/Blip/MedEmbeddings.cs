using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Blip;

/// <summary>
/// med.py <c>BertEmbeddings</c>: word + absolute position embeddings, then LayerNorm (no token-type embeddings, unlike
/// BERT). <c>position_ids</c> is a persistent buffer, as in the checkpoints.
/// </summary>
internal sealed class MedEmbeddings : nn.Module
{
#pragma warning disable IDE1006 // field names are the state-dict names
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly Tensor position_ids;
#pragma warning restore IDE1006

    public MedEmbeddings(MedConfig c, Device? device = null) : base("embeddings")
    {
        word_embeddings = nn.Embedding(c.VocabSize, c.HiddenSize, device: device);
        position_embeddings = nn.Embedding(c.MaxPositionEmbeddings, c.HiddenSize, device: device);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, device: device);
        position_ids = arange(c.MaxPositionEmbeddings, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        RegisterComponents();
    }

    public Tensor Forward(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        long length = inputIds.shape[1];
        if (length > position_ids.shape[1])
        {
            throw new ArgumentException($"{length} tokens exceed max_position_embeddings = {position_ids.shape[1]}", nameof(inputIds));
        }
        var positions = position_ids.narrow(1, 0, length);
        var x = word_embeddings.forward(inputIds) + position_embeddings.forward(positions);
        return LayerNorm.forward(x).MoveToOuterDisposeScope();
    }
}
