using Ddpo.Models.Blip;
using Ddpo.Models.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Rewards.ImageReward;

/// <summary>
/// THUDM/ImageReward's <c>ImageReward</c> module (<c>ImageReward/ImageReward.py</c> at c1392c6): <c>blip</c> (BLIP's ViT and
/// MED text encoder) and <c>mlp</c>, with the state-dict names of <c>ImageReward.pt</c>. The score of a (prompt, image)
/// pair is <c>(mlp(text_encoder(ids, mask, visual_encoder(pixels))[:, 0]) − mean) / std</c>, as <c>ImageReward.score</c>
/// and <c>score_gard</c> compute it.
/// </summary>
internal sealed class ImageRewardModel : nn.Module
{
#pragma warning disable IDE1006 // field names are the state-dict names
    private readonly BlipImageTextModel blip;
    private readonly ImageRewardMlp mlp;
#pragma warning restore IDE1006

    /// <summary>Weight files looked for in a model folder, in order.</summary>
    public static readonly string[] WeightFiles = ["model.safetensors", "ImageReward.pt"];

    /// <summary>Builds the architecture of <paramref name="config"/> (uninitialised weights) on <paramref name="device"/> (the meta device works).</summary>
    public ImageRewardModel(ImageRewardConfig config, Device? device = null) : base("imagereward")
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate("ImageReward config");
        Config = config;
        blip = new BlipImageTextModel(config.Vision, config.Text, config.EmbedDim, device);
        mlp = new ImageRewardMlp(config.Text.HiddenSize, config.MlpHidden, device);
        RegisterComponents();
        eval();
    }

    /// <summary>The sizes and constants.</summary>
    public ImageRewardConfig Config { get; }

    /// <summary>
    /// Loads a model on the CPU in float32, then moves it to <paramref name="device"/>. <paramref name="path"/> is a folder
    /// (<c>model.safetensors</c> or <c>ImageReward.pt</c>, with <c>config.json</c> and <c>med_config.json</c> when the sizes
    /// are not ImageReward-v1.0's) or a weight file (<c>.safetensors</c>, or a <c>torch.save</c> file read by the restricted
    /// unpickler of <see cref="TorchCheckpoint"/>: nothing in it is executed). Loading is strict (every key and shape, see
    /// <see cref="StateDictLoader"/>), except that the <c>position_ids</c> buffer may be absent.
    /// </summary>
    public static ImageRewardModel FromPretrained(string path, Device? device = null)
    {
        string folder, weights;
        if (Directory.Exists(path))
        {
            folder = path;
            weights = WeightFiles.Select(f => Path.Combine(path, f)).FirstOrDefault(File.Exists)
                ?? throw new ModelLoadException($"{path}: no ImageReward weights (looked for {string.Join(", ", WeightFiles)})");
        }
        else if (File.Exists(path))
        {
            folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
            weights = path;
        }
        else
        {
            throw new ModelLoadException($"{path}: ImageReward model not found (expected a folder with {string.Join(" or ", WeightFiles)}, or a weight file)");
        }
        var model = new ImageRewardModel(LoadConfig(folder));
        try
        {
            var ext = Path.GetExtension(weights).ToLowerInvariant();
            var tensors = ext == ".safetensors" ? SafetensorsFile.Load(weights) : TorchCheckpoint.Load(weights);
            try
            {
                // Older checkpoints may lack the buffer (it is arange, not learned).
                const string positionIds = "blip.text_encoder.embeddings.position_ids";
                if (!tensors.ContainsKey(positionIds)) tensors[positionIds] = model.state_dict()[positionIds].clone();
                StateDictLoader.LoadStrict(model, tensors, weights);
            }
            finally
            {
                StateDictLoader.DisposeAll(tensors);
            }
            if (device is not null && device.type != DeviceType.CPU) model.to(device);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The config of a model folder: its <c>config.json</c>, else ImageReward-v1.0 with the folder's <c>med_config.json</c> when present.</summary>
    public static ImageRewardConfig LoadConfig(string folder)
    {
        var config = Path.Combine(folder, "config.json");
        if (File.Exists(config)) return ImageRewardConfig.Load(config);
        var med = Path.Combine(folder, "med_config.json");
        return File.Exists(med) ? new ImageRewardConfig { Text = MedConfig.Load(med) } : ImageRewardConfig.V1;
    }

    /// <summary>The device of the weights.</summary>
    public Device Device => blip.VisualEncoder.PatchWeight.device;

    /// <summary><c>blip.visual_encoder(pixels)</c>: every image token [B, 1 + patches, vit width].</summary>
    public Tensor EncodeImage(Tensor pixelValues)
    {
        var w = blip.VisualEncoder.PatchWeight;
        return blip.VisualEncoder.forward(pixelValues.to(w.dtype, w.device));
    }

    /// <summary><c>blip.text_encoder(ids, mask, encoder_hidden_states=imageEmbeds).last_hidden_state</c> [B, T, hidden].</summary>
    public Tensor EncodeText(Tensor inputIds, Tensor attentionMask, Tensor imageEmbeds)
    {
        var d = Device;
        return blip.TextEncoder.Forward(inputIds.to(ScalarType.Int64, d), attentionMask.to(d), imageEmbeds);
    }

    /// <summary><c>mlp(features)</c> [B, 1] of [CLS] features [B, hidden].</summary>
    public Tensor Head(Tensor features) => mlp.forward(features);

    /// <summary>
    /// Normalised scores [B] (float32, graph kept) of preprocessed pixel values [B, 3, S, S] against the tokenized prompts
    /// (ids and mask [B, T]): <c>score_gard</c> of ImageReward.py.
    /// </summary>
    public Tensor Score(Tensor pixelValues, Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var image = EncodeImage(pixelValues);
        var text = EncodeText(inputIds, attentionMask, image);
        var rewards = Head(text.select(1, 0));
        return ((rewards.squeeze(1).to(ScalarType.Float32) - Config.Mean) / Config.Std).MoveToOuterDisposeScope();
    }
}
