using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Models.Vae;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>Random-init models round-trip through SavePretrained / FromPretrained; SD 2.x-style configs work.</summary>
public sealed class RoundTripTests
{
    /// <summary>A tiny SD 2.x-style UNet: linear projections, per-block head counts, upcast attention, per-block depths.</summary>
    private static UNet2DConditionConfig Sd2Tiny() => new()
    {
        SampleSize = 8,
        BlockOutChannels = [32, 64, 64],
        DownBlockTypes = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        UpBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        LayersPerBlock = [2, 1, 1],
        AttentionHeadDim = [2, 4, 4],
        CrossAttentionDim = [16, 16, 16],
        TransformerLayersPerBlock = [1, 2, 2],
        NormNumGroups = 8,
        UseLinearProjection = true,
        UpcastAttention = true,
    };

    [Fact]
    public void Sd2StyleUnetRoundTripsAndRuns()
    {
        var dir = TestPaths.NewTempDir("ddpo-unet-sd2");
        try
        {
            using var scope = NewDisposeScope();
            torch.manual_seed(11);
            using var unet = new UNet2DConditionModel(Sd2Tiny());
            var state = unet.state_dict();
            Assert.Equal(2, state["down_blocks.0.attentions.0.proj_in.weight"].dim());
            Assert.Contains("down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.weight", state.Keys);
            Assert.DoesNotContain("down_blocks.0.attentions.0.transformer_blocks.1.attn2.to_k.weight", state.Keys);
            Assert.Equal([64, 16], state["mid_block.attentions.0.transformer_blocks.1.attn2.to_k.weight"].shape);
            Assert.Equal(3, unet.Config.LayersPerBlock[0] + 1);
            Assert.Contains("up_blocks.2.resnets.2.conv1.weight", state.Keys);
            Assert.Contains("up_blocks.1.attentions.1.transformer_blocks.1.norm3.weight", state.Keys);
            Assert.DoesNotContain("up_blocks.2.attentions.0.transformer_blocks.1.norm3.weight", state.Keys);
            Assert.Equal([32, 96, 3, 3], state["up_blocks.2.resnets.0.conv1.weight"].shape);

            unet.SavePretrained(dir);
            using var loaded = UNet2DConditionModel.FromPretrained(dir);
            Assert.Equal(unet.Config.ToJson(), loaded.Config.ToJson());

            var sample = randn(2, 4, 8, 8);
            var context = randn(2, 5, 16);
            var t = tensor(new long[] { 10, 900 });
            unet.eval();
            using var _ = no_grad();
            var expected = unet.call(sample, t, context);
            Assert.Equal([2, 4, 8, 8], expected.shape);
            TensorAssert.Close(expected, loaded.call(sample, t, context), atol: 0, rtol: 0, what: "reloaded SD2-style UNet");

            // A size that is not a multiple of the up-sampling factor (4) forwards the skip sizes to the up-samplers.
            var odd = loaded.call(randn(1, 4, 6, 10), tensor(3L), randn(1, 5, 16));
            Assert.Equal([1, 4, 6, 10], odd.shape);

            // Upcast attention in bfloat16 (attention computed in float32).
            loaded.to(ScalarType.BFloat16);
            var half = loaded.call(sample, t, context);
            Assert.Equal(ScalarType.BFloat16, half.dtype);
            double range = expected.abs().max().item<float>();
            TensorAssert.Close(expected, half.to(ScalarType.Float32), atol: 0.05 * range, rtol: 0.05, what: "bf16 SD2-style UNet");
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }
    }

    [Fact]
    public void ConfigJsonRoundTrips()
    {
        foreach (var config in new[] { Sd2Tiny(), UNet2DConditionConfig.Sd14(), UNet2DConditionConfig.Sd21() })
        {
            var dir = TestPaths.NewTempDir("ddpo-config");
            try
            {
                var path = Path.Combine(dir, "config.json");
                File.WriteAllText(path, config.ToJson());
                var back = UNet2DConditionConfig.Load(path);
                Assert.Equal(config.ToJson(), back.ToJson());
                Assert.Equal(config.HeadsPerBlock, back.HeadsPerBlock);
            }
            finally
            {
                ModelFixtures.Delete(dir);
            }
        }
        Assert.Equal([5, 10, 20, 20], UNet2DConditionConfig.Sd21().HeadsPerBlock);
        Assert.Equal([768, 768, 768, 768], UNet2DConditionConfig.Sd14().CrossAttentionDim);
    }

    [Fact]
    public void ModelBuiltInsideADisposeScopeSurvivesIt()
    {
        UNet2DConditionModel unet;
        using (NewDisposeScope())
        {
            unet = new UNet2DConditionModel(Sd2Tiny());
        }
        using (unet)
        using (NewDisposeScope())
        using (no_grad())
        {
            Assert.All(unet.parameters(), p => Assert.False(p.IsInvalid));
            Assert.Equal([1, 4, 8, 8], unet.call(randn(1, 4, 8, 8), tensor(1L), randn(1, 3, 16)).shape);
        }
    }

    [Fact]
    public void Fp16VariantLoadsInHalfPrecisionAndFloat32()
    {
        var dir = ModelFixtures.UnetCopy(w =>
        {
            foreach (var key in w.Keys.ToList())
            {
                var half = w[key].to(ScalarType.Float16);
                w[key].Dispose();
                w[key] = half;
            }
        }, "diffusion_pytorch_model.fp16.safetensors");
        try
        {
            using var scope = NewDisposeScope();
            var io = ModelFixtures.Io(ModelFixtures.UnetFolder);
            var expected = io["out"];
            double range = expected.abs().max().item<float>();
            using var bf16 = UNet2DConditionModel.FromPretrained(dir, ScalarType.BFloat16, CPU);
            Assert.All(bf16.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
            var outBf16 = ModelFixtures.Run(bf16, io);
            Assert.Equal(ScalarType.BFloat16, outBf16.dtype);
            TensorAssert.Close(expected, outBf16.to(ScalarType.Float32), atol: 0.05 * range, rtol: 0.05, what: "bf16 UNet");
            using var fp16 = UNet2DConditionModel.FromPretrained(dir, ScalarType.Float16, CPU);
            Assert.All(fp16.parameters(), p => Assert.Equal(ScalarType.Float16, p.dtype));
            var outFp16 = ModelFixtures.Run(fp16, io);
            Assert.Equal(ScalarType.Float16, outFp16.dtype);
            TensorAssert.Close(expected, outFp16.to(ScalarType.Float32), atol: 0.01 * range, rtol: 0.01, what: "fp16 UNet");
            using var fp32 = UNet2DConditionModel.FromPretrained(dir);
            TensorAssert.Close(expected, ModelFixtures.Run(fp32, io), atol: 0.01 * range, rtol: 0.01, what: "fp32 UNet from fp16 weights");
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }
    }

    [Fact]
    public void ShardedCheckpointLoads()
    {
        var dir = ModelFixtures.UnetCopy();
        try
        {
            using var scope = NewDisposeScope();
            var single = Path.Combine(dir, "diffusion_pytorch_model.safetensors");
            var all = SafetensorsFile.Load(single);
            File.Delete(single);
            var keys = all.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
            var shards = new[] { keys.Take(keys.Count / 2).ToList(), keys.Skip(keys.Count / 2).ToList() };
            var map = new System.Text.Json.Nodes.JsonObject();
            for (int i = 0; i < 2; i++)
            {
                var name = $"diffusion_pytorch_model-0000{i + 1}-of-00002.safetensors";
                SafetensorsFile.SaveAtomic(Path.Combine(dir, name), shards[i].ToDictionary(k => k, k => all[k]));
                foreach (var k in shards[i]) map[k] = name;
            }
            File.WriteAllText(single + ".index.json", new System.Text.Json.Nodes.JsonObject { ["weight_map"] = map }.ToJsonString());
            using var unet = UNet2DConditionModel.FromPretrained(dir);
            var io = ModelFixtures.Io(ModelFixtures.UnetFolder);
            TensorAssert.Close(io["out"], ModelFixtures.Run(unet, io), what: "sharded UNet");
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }
    }

    [Fact]
    public void VaeRoundTripsWithAndWithoutOptionalParts()
    {
        foreach (var (quant, attention) in new[] { (true, true), (false, false) })
        {
            var dir = TestPaths.NewTempDir("ddpo-vae");
            try
            {
                using var scope = NewDisposeScope();
                var config = new AutoencoderKLConfig
                {
                    BlockOutChannels = [8, 16],
                    DownBlockTypes = ["DownEncoderBlock2D", "DownEncoderBlock2D"],
                    UpBlockTypes = ["UpDecoderBlock2D", "UpDecoderBlock2D"],
                    NormNumGroups = 4,
                    UseQuantConv = quant,
                    UsePostQuantConv = quant,
                    MidBlockAddAttention = attention,
                    ScalingFactor = 0.5,
                };
                using var vae = new AutoencoderKL(config);
                var keys = vae.state_dict().Keys.ToList();
                Assert.Equal(quant, keys.Contains("quant_conv.weight"));
                Assert.Equal(quant, keys.Contains("post_quant_conv.weight"));
                Assert.Equal(attention, keys.Contains("decoder.mid_block.attentions.0.to_q.weight"));
                vae.SavePretrained(dir);
                using var loaded = AutoencoderKL.FromPretrained(dir);
                Assert.Equal(0.5, loaded.ScalingFactor);
                Assert.Equal(config.ToJson(), loaded.Config.ToJson());
                vae.eval();
                using var _ = no_grad();
                var image = rand(2, 3, 16, 16) * 2 - 1;
                var (mean, std) = vae.Encode(image);
                Assert.Equal([2, 4, 8, 8], mean.shape);
                var (mean2, std2) = loaded.Encode(image);
                TensorAssert.Close(mean, mean2, atol: 0, rtol: 0, what: "mean");
                TensorAssert.Close(std, std2, atol: 0, rtol: 0, what: "std");
                var decoded = loaded.Decode(mean2);
                Assert.Equal([2, 3, 16, 16], decoded.shape);
                TensorAssert.Close(vae.Decode(mean), decoded, atol: 0, rtol: 0, what: "decoded");
            }
            finally
            {
                ModelFixtures.Delete(dir);
            }
        }
    }

    [Fact]
    public void VaeDecodesInBFloat16()
    {
        using var scope = NewDisposeScope();
        using var vae = AutoencoderKL.FromPretrained(ModelFixtures.VaeFolder, ScalarType.BFloat16, CPU);
        var io = ModelFixtures.Io(ModelFixtures.VaeFolder);
        using var _ = no_grad();
        var decoded = vae.Decode(io["latents"]);
        Assert.Equal(ScalarType.BFloat16, decoded.dtype);
        var expected = io["decoded"];
        double range = expected.abs().max().item<float>();
        TensorAssert.Close(expected, decoded.to(ScalarType.Float32), atol: 0.05 * range, rtol: 0.05, what: "bf16 decode");
    }
}
