using Ddpo.Models.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.OpenClip;

/// <summary>
/// open_clip's <c>CLIP</c> (HPSv2's fork at 866735e; HPSv2.1 = ViT-H-14): the <c>visual</c> tower and the text
/// tower at the top level (<c>token_embedding</c>, <c>positional_embedding</c>, <c>transformer</c>, <c>ln_final</c>,
/// <c>text_projection</c>) and <c>logit_scale</c>, with open_clip's state-dict names, so that
/// <c>HPS_v2.1_compressed.pt['state_dict']</c> loads without renaming.
/// </summary>
internal sealed class OpenClipModel : nn.Module
{
#pragma warning disable IDE1006 // field names are the open_clip state-dict names
    private readonly OpenClipVisionTransformer visual;
    private readonly OpenClipTransformer transformer;
    private readonly Embedding token_embedding;
    private readonly Parameter positional_embedding;
    private readonly LayerNorm ln_final;
    private readonly Parameter text_projection;
    private readonly Parameter logit_scale;
#pragma warning restore IDE1006

    /// <summary>Builds the (uninitialised) model on <paramref name="device"/> (null: the CPU; meta: shapes only).</summary>
    internal OpenClipModel(OpenClipConfig config, Device? device = null) : base("open_clip")
    {
        ArgumentNullException.ThrowIfNull(config);
        Config = config;
        visual = new OpenClipVisionTransformer(config, device);
        transformer = new OpenClipTransformer(config.TextWidth, config.TextLayers, config.TextHeads, config.TextMlpRatio, config.Activation, causal: true, device);
        token_embedding = nn.Embedding(config.VocabSize, config.TextWidth, device: device);
        positional_embedding = new Parameter(empty(config.ContextLength, config.TextWidth, device: device));
        ln_final = nn.LayerNorm(config.TextWidth, 1e-5, device: device);
        text_projection = new Parameter(empty(config.TextWidth, config.EmbedDim, device: device));
        logit_scale = new Parameter(empty(Array.Empty<long>(), ScalarType.Float32, device).fill_(Math.Log(1 / 0.07)));
        RegisterComponents();
    }

    /// <summary>The model's configuration.</summary>
    public OpenClipConfig Config { get; }

    /// <summary>The parameters' dtype and device (inputs are moved there).</summary>
    public Tensor Anchor => visual.Anchor;

    /// <summary>
    /// Loads the weights strictly from a safetensors file or a <c>torch.save</c> checkpoint (<c>.pt</c>/<c>.pth</c>/<c>.bin</c>;
    /// a dict nested under <c>state_dict</c>, as HPS_v2.1_compressed.pt, is found through the restricted unpickler),
    /// converted to <paramref name="dtype"/> on <paramref name="device"/>, in eval mode.
    /// </summary>
    public static OpenClipModel FromFiles(string configPath, string weightsPath, ScalarType dtype, Device device)
    {
        var config = OpenClipConfig.Load(configPath);
        if (!File.Exists(weightsPath)) throw new ModelLoadException($"{weightsPath}: weights file not found");
        var model = new OpenClipModel(config);
        try
        {
            var ext = Path.GetExtension(weightsPath).ToLowerInvariant();
            var tensors = ext is ".pt" or ".pth" or ".bin" or ".ckpt" ? TorchCheckpoint.Load(weightsPath) : SafetensorsFile.Load(weightsPath);
            try
            {
                StateDictLoader.LoadStrict(model, tensors, weightsPath);
            }
            finally
            {
                StateDictLoader.DisposeAll(tensors);
            }
            model.eval();
            if (dtype != ScalarType.Float32) model.to(dtype);
            if (device.type != DeviceType.CPU) model.to(device);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary><c>logit_scale.exp()</c> as a scalar tensor.</summary>
    public Tensor LogitScaleExp() => logit_scale.exp();

    /// <summary><c>encode_image</c> of normalised pixels [B, 3, S, S]: [B, embed_dim], not normalised.</summary>
    public Tensor EncodeImage(Tensor pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        int s = Config.ImageSize;
        if (pixels.dim() != 4 || pixels.shape[1] != 3 || pixels.shape[2] != s || pixels.shape[3] != s)
        {
            throw new ArgumentException($"pixel values must be [batch, 3, {s}, {s}], got [{string.Join(", ", pixels.shape)}]", nameof(pixels));
        }
        using var scope = NewDisposeScope();
        return visual.forward(pixels.to(Anchor.dtype, Anchor.device)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>encode_text</c> of token ids [B, context_length]: causal transformer, <c>ln_final</c>, the row at
    /// <c>text.argmax(-1)</c> (the end token has the largest id), <c>@ text_projection</c>; not normalised.
    /// </summary>
    public Tensor EncodeText(Tensor ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.dim() != 2 || ids.shape[1] != Config.ContextLength || !is_integral(ids.dtype))
        {
            throw new ArgumentException($"token ids must be integers [batch, {Config.ContextLength}], got {ids.dtype} [{string.Join(", ", ids.shape)}]", nameof(ids));
        }
        using var scope = NewDisposeScope();
        var t = ids.to(ScalarType.Int64, Anchor.device);
        long lo = t.min().item<long>(), hi = t.max().item<long>();
        if (lo < 0 || hi >= Config.VocabSize) throw new ArgumentException($"token ids must lie in 0..{Config.VocabSize - 1}, got {lo}..{hi}", nameof(ids));
        var x = transformer.forward(token_embedding.forward(t) + positional_embedding);
        x = ln_final.forward(x);
        var pooled = x[arange(x.shape[0], device: x.device), t.argmax(-1)];
        return pooled.matmul(text_projection).MoveToOuterDisposeScope();
    }
}
