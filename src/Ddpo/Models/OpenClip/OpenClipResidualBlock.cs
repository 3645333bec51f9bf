using Ddpo.Models.Clip;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.OpenClip;

/// <summary>open_clip's <c>mlp</c> of a block: <c>c_fc</c> → GELU (or QuickGELU) → <c>c_proj</c>.</summary>
internal sealed class OpenClipMlp : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the open_clip state-dict names
    private readonly Linear c_fc;
    private readonly Linear c_proj;
#pragma warning restore IDE1006
    private readonly string _activation;

    public OpenClipMlp(int width, int hidden, string activation, Device? device) : base("mlp")
    {
        c_fc = nn.Linear(width, hidden, device: device);
        c_proj = nn.Linear(hidden, width, device: device);
        _activation = activation;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return c_proj.forward(ClipActivation.Apply(_activation, c_fc.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>open_clip's <c>ResidualAttentionBlock</c> (no layer scale): x + attn(ln_1(x)), then x + mlp(ln_2(x)); LayerNorm eps 1e-5.</summary>
internal sealed class OpenClipResidualBlock : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the open_clip state-dict names
    private readonly LayerNorm ln_1;
    private readonly OpenClipAttention attn;
    private readonly LayerNorm ln_2;
    private readonly OpenClipMlp mlp;
#pragma warning restore IDE1006

    public OpenClipResidualBlock(int width, int heads, double mlpRatio, string activation, bool causal, Device? device) : base("resblock")
    {
        ln_1 = nn.LayerNorm(width, 1e-5, device: device);
        attn = new OpenClipAttention(width, heads, causal, device);
        ln_2 = nn.LayerNorm(width, 1e-5, device: device);
        mlp = new OpenClipMlp(width, (int)(width * mlpRatio), activation, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = x + attn.forward(ln_1.forward(x));
        return (x + mlp.forward(ln_2.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>open_clip's <c>Transformer</c>: <c>resblocks.{i}</c>.</summary>
internal sealed class OpenClipTransformer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the open_clip state-dict names
    private readonly ModuleList<OpenClipResidualBlock> resblocks;
#pragma warning restore IDE1006

    public OpenClipTransformer(int width, int layers, int heads, double mlpRatio, string activation, bool causal, Device? device) : base("transformer")
    {
        resblocks = new ModuleList<OpenClipResidualBlock>();
        for (int i = 0; i < layers; i++) resblocks.Add(new OpenClipResidualBlock(width, heads, mlpRatio, activation, causal, device));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var block in resblocks) x = block.forward(x);
        return x.MoveToOuterDisposeScope();
    }
}
