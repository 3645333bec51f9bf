using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Models.Vae;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>Bad model folders fail with exceptions that name the file and the tensor or field at fault.</summary>
public sealed class ModelLoadingErrorTests
{
    private const string WeightsName = "diffusion_pytorch_model.safetensors";

    [Fact]
    public void MissingTensorIsReported()
    {
        var dir = ModelFixtures.UnetCopy(w => { w["conv_in.bias"].Dispose(); w.Remove("conv_in.bias"); });
        try
        {
            var e = Assert.Throws<ModelLoadException>(() => UNet2DConditionModel.FromPretrained(dir));
            Assert.Contains("missing keys", e.Message);
            Assert.Contains("conv_in.bias", e.Message);
            Assert.Contains(Path.Combine(dir, WeightsName), e.Message);
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }
    }

    [Fact]
    public void UnexpectedTensorIsReported()
    {
        var dir = ModelFixtures.UnetCopy(w => w["mid_block.extra.weight"] = zeros(3));
        try
        {
            var e = Assert.Throws<ModelLoadException>(() => UNet2DConditionModel.FromPretrained(dir));
            Assert.Contains("unexpected keys", e.Message);
            Assert.Contains("mid_block.extra.weight", e.Message);
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }
    }

    [Fact]
    public void MisShapedTensorIsReported()
    {
        const string key = "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight";
        var dir = ModelFixtures.UnetCopy(w => { w[key].Dispose(); w[key] = zeros(64, 25); });
        try
        {
            var e = Assert.Throws<ModelLoadException>(() => UNet2DConditionModel.FromPretrained(dir));
            Assert.Contains("shape mismatches", e.Message);
            Assert.Contains($"{key}: file has [64, 25], model expects [64, 24]", e.Message);
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }
    }

    [Fact]
    public void TruncatedWeightFileIsReported()
    {
        var dir = ModelFixtures.UnetCopy();
        try
        {
            var file = Path.Combine(dir, WeightsName);
            var bytes = File.ReadAllBytes(file);
            File.WriteAllBytes(file, bytes[..(bytes.Length / 2)]);
            var e = Assert.Throws<ModelLoadException>(() => UNet2DConditionModel.FromPretrained(dir));
            Assert.Contains("truncated", e.Message);
            Assert.Contains(file, e.Message);
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }
    }

    [Fact]
    public void MissingFolderIsReported()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"ddpo-absent-{Guid.NewGuid():N}");
        var e = Assert.Throws<ModelLoadException>(() => UNet2DConditionModel.FromPretrained(dir));
        Assert.Contains(dir, e.Message);
        Assert.Contains("not found", e.Message);
        Assert.Throws<ModelLoadException>(() => AutoencoderKL.FromPretrained(dir));
    }

    [Fact]
    public void MissingConfigIsReported()
    {
        var dir = ModelFixtures.UnetCopy();
        try
        {
            File.Delete(Path.Combine(dir, "config.json"));
            var e = Assert.Throws<ConfigException>(() => UNet2DConditionModel.FromPretrained(dir));
            Assert.Contains(Path.Combine(dir, "config.json"), e.Message);
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }
    }

    [Fact]
    public void MissingWeightFileIsReported()
    {
        var dir = ModelFixtures.UnetCopy();
        try
        {
            File.Delete(Path.Combine(dir, WeightsName));
            var e = Assert.Throws<ModelLoadException>(() => UNet2DConditionModel.FromPretrained(dir));
            Assert.Contains(WeightsName, e.Message);
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }
    }

    [Theory]
    [InlineData("addition_embed_type", "\"text_time\"")]
    [InlineData("class_embed_type", "\"timestep\"")]
    [InlineData("time_cond_proj_dim", "256")]
    [InlineData("encoder_hid_dim", "1024")]
    [InlineData("only_cross_attention", "true")]
    [InlineData("dual_cross_attention", "true")]
    [InlineData("resnet_time_scale_shift", "\"scale_shift\"")]
    [InlineData("attention_type", "\"gated\"")]
    [InlineData("time_embedding_type", "\"fourier\"")]
    [InlineData("mid_block_type", "\"UNetMidBlock2DSimpleCrossAttn\"")]
    [InlineData("down_block_types", "[\"AttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"DownBlock2D\"]")]
    [InlineData("act_fn", "\"gelu\"")]
    public void UnsupportedConfigFieldIsReported(string field, string json)
    {
        var dir = ModelFixtures.UnetCopy();
        try
        {
            var path = Path.Combine(dir, "config.json");
            var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            root[field] = JsonNode.Parse(json);
            File.WriteAllText(path, root.ToJsonString());
            var e = Assert.Throws<ConfigException>(() => UNet2DConditionModel.FromPretrained(dir));
            Assert.Contains($"'{field}'", e.Message);
            Assert.Contains(path, e.Message);
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }
    }

    [Fact]
    public void WrongClassNameIsReported()
    {
        var e = Assert.Throws<ConfigException>(() => UNet2DConditionConfig.Load(Path.Combine(ModelFixtures.VaeFolder, "config.json")));
        Assert.Contains("_class_name", e.Message);
        Assert.Contains("AutoencoderKL", e.Message);
    }

    [Fact]
    public void HeadCountThatDoesNotDivideTheChannelsIsReported()
    {
        var dir = ModelFixtures.UnetCopy();
        try
        {
            var path = Path.Combine(dir, "config.json");
            var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            root["attention_head_dim"] = JsonNode.Parse("[8, 8, 7, 8]");
            File.WriteAllText(path, root.ToJsonString());
            var e = Assert.Throws<ConfigException>(() => UNet2DConditionConfig.Load(path));
            Assert.Contains("'attention_head_dim'", e.Message);
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }
    }
}
