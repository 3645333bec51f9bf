using Ddpo.Models.Loading;
using Ddpo.Models.Lora;
using Ddpo.Models.Unet;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>LoRA adapters on the UNet's attention projections: parity with diffusers, save/load, merge, errors.</summary>
public sealed class LoraTests
{
    [Fact]
    public void FixtureLoraMatchesDiffusers()
    {
        using var scope = NewDisposeScope();
        using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
        using var lora = LoraAdapters.Load(unet, ModelFixtures.LoraFile);
        Assert.Equal(128, lora.Count);
        Assert.All(lora.Parameters, p => Assert.Equal(ScalarType.Float32, p.dtype));
        var io = ModelFixtures.Io(ModelFixtures.LoraFolder);
        TensorAssert.Close(io["out"], ModelFixtures.Run(unet, io), what: "out with LoRA");
    }

    [Fact]
    public void BaseStateDictHasNoLoraTensors()
    {
        using var scope = NewDisposeScope();
        using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
        int before = unet.state_dict().Count;
        using var lora = LoraAdapters.Attach(unet, 4, 4);
        var keys = unet.state_dict().Keys.ToList();
        Assert.Equal(before, keys.Count);
        Assert.DoesNotContain(keys, k => k.Contains("lora", StringComparison.OrdinalIgnoreCase));
        Assert.Contains("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.weight", keys);
    }

    [Fact]
    public void ZeroInitialisedLoraLeavesOutputUnchanged()
    {
        using var scope = NewDisposeScope();
        using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
        var io = ModelFixtures.Io(ModelFixtures.UnetFolder);
        var baseline = ModelFixtures.Run(unet, io);
        using var lora = LoraAdapters.Attach(unet, 4, 8, gen: new Generator(1));
        Assert.Equal(2 * lora.Count, lora.Parameters.Count);
        Assert.True(lora.Parameters.All(p => p.requires_grad));
        Assert.True(lora.Parameters[0].abs().max().item<float>() > 0);
        Assert.Equal(0f, lora.Parameters[1].abs().max().item<float>());
        TensorAssert.Close(baseline, ModelFixtures.Run(unet, io), atol: 0, rtol: 0, what: "zero-init LoRA");
    }

    private static (Tensor Down, Tensor Up) AllInitialWeights(LoraAdapters lora) =>
        (cat(lora.ModulePaths.Select(p => lora[p].Down.detach().flatten()).ToList(), 0),
         cat(lora.ModulePaths.Select(p => lora[p].Up.detach().flatten()).ToList(), 0));

    [Theory]
    [InlineData(4)]
    [InlineData(8)]
    public void DefaultInitIsDdpoPytorchsGaussianWithStdOneOverRank(int rank)
    {
        // diffusers 0.17 LoRALinearLayer (ddpo-pytorch): nn.init.normal_(down.weight, std=1 / rank); zeros for up.
        using var scope = NewDisposeScope();
        using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
        using var lora = LoraAdapters.Attach(unet, rank, rank, gen: new Generator(11));
        var (down, up) = AllInitialWeights(lora);
        Assert.True(down.numel() > 10_000, $"only {down.numel()} weights: too few to estimate the std");
        double std = down.std().item<float>(), mean = down.mean().item<float>();
        Assert.InRange(std, 0.97 / rank, 1.03 / rank);
        Assert.InRange(mean, -0.05 / rank, 0.05 / rank);
        // Gaussian, not uniform: about 4.6% of N(0, s^2) lies beyond 2 s; a uniform with that std has none.
        double tail = (down.abs() > 2.0 / rank).to(ScalarType.Float32).mean().item<float>();
        Assert.InRange(tail, 0.035, 0.057);
        Assert.Equal(0f, up.abs().max().item<float>());
    }

    [Fact]
    public void KaimingUniformInitIsPeftsUniformWithBoundOneOverSqrtInFeatures()
    {
        using var scope = NewDisposeScope();
        using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
        using var lora = LoraAdapters.Attach(unet, 8, 8, gen: new Generator(11), init: LoraInit.KaimingUniform);
        var scaled = new List<Tensor>();
        foreach (var path in lora.ModulePaths)
        {
            var down = lora[path].Down.detach();
            double bound = 1.0 / Math.Sqrt(down.shape[1]);
            Assert.True(down.abs().max().item<float>() <= bound, $"{path}: |down| exceeds 1/sqrt(in) = {bound}");
            scaled.Add((down / bound).flatten());
            Assert.Equal(0f, lora[path].Up.abs().max().item<float>());
        }
        // down / bound is U(-1, 1): std 1/sqrt(3), extremes near ±1.
        var all = cat(scaled, 0);
        Assert.InRange(all.std().item<float>(), 0.97 / Math.Sqrt(3), 1.03 / Math.Sqrt(3));
        Assert.InRange(all.abs().max().item<float>(), 0.999, 1.0);
    }

    [Fact]
    public void InitIsSeededAndTheTwoInitsDiffer()
    {
        using var scope = NewDisposeScope();
        using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
        Tensor Draw(LoraInit init, ulong seed)
        {
            using var lora = LoraAdapters.Attach(unet, 4, 4, gen: new Generator(seed), init: init);
            return AllInitialWeights(lora).Down.clone();
        }
        var a = Draw(LoraInit.Gaussian, 5);
        TensorAssert.Close(a, Draw(LoraInit.Gaussian, 5), atol: 0, rtol: 0, what: "same seed, same init");
        Assert.True((a - Draw(LoraInit.Gaussian, 6)).abs().max().item<float>() > 0, "another seed gives the same weights");
        Assert.True((a - Draw(LoraInit.KaimingUniform, 5)).abs().max().item<float>() > 0, "the two inits give the same weights");
    }

    [Fact]
    public void SaveThenLoadGivesTheSameOutputAndFixtureKeys()
    {
        using var scope = NewDisposeScope();
        var dir = TestPaths.NewTempDir("ddpo-lora");
        try
        {
            using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
            var io = ModelFixtures.Io(ModelFixtures.UnetFolder);
            var baseline = ModelFixtures.Run(unet, io);
            var lora = LoraAdapters.Attach(unet, 4, 8, gen: new Generator(7));
            RandomiseUp(lora, 3);
            var withLora = ModelFixtures.Run(unet, io);
            Assert.True((withLora - baseline).abs().max().item<float>() > 1e-3, "LoRA should change the output");

            var file = Path.Combine(dir, "pytorch_lora_weights.safetensors");
            lora.Save(file);
            lora.Detach();
            TensorAssert.Close(baseline, ModelFixtures.Run(unet, io), atol: 0, rtol: 0, what: "after Detach");

            var saved = SafetensorsFile.Load(file);
            var fixture = SafetensorsFile.Load(ModelFixtures.LoraFile);
            Assert.Equal(fixture.Keys.OrderBy(k => k, StringComparer.Ordinal), saved.Keys.OrderBy(k => k, StringComparer.Ordinal));

            using var loaded = LoraAdapters.Load(unet, file);
            TensorAssert.Close(withLora, ModelFixtures.Run(unet, io), atol: 1e-5, rtol: 1e-5, what: "reloaded LoRA");
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }
    }

    [Fact]
    public void LoadWeightsIntoExistingAdaptersRescalesToTheirScale()
    {
        using var scope = NewDisposeScope();
        using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
        using var lora = LoraAdapters.Attach(unet, 4, 16);
        var before = lora.Parameters[0].detach().clone();
        lora.LoadWeights(ModelFixtures.LoraFile);
        Assert.False(before.allclose(lora.Parameters[0]));
        Assert.Equal(4.0, lora[lora.ModulePaths[0]].Scale);
        var io = ModelFixtures.Io(ModelFixtures.LoraFolder);
        TensorAssert.Close(io["out"], ModelFixtures.Run(unet, io), what: "out after LoadWeights");
    }

    [Fact]
    public void PeftNamingWithAlphaIsAccepted()
    {
        using var scope = NewDisposeScope();
        var dir = TestPaths.NewTempDir("ddpo-lora");
        try
        {
            var fixture = SafetensorsFile.Load(ModelFixtures.LoraFile);
            var peft = new Dictionary<string, Tensor>();
            foreach (var (key, value) in fixture)
            {
                var module = key["unet.".Length..key.IndexOf(".lora.", StringComparison.Ordinal)];
                if (key.EndsWith(".lora.down.weight", StringComparison.Ordinal))
                {
                    peft[$"base_model.model.{module}.lora_A.weight"] = value;
                    peft[$"base_model.model.{module}.alpha"] = tensor(8.0f);
                }
                else
                {
                    peft[$"base_model.model.{module}.lora_B.weight"] = value / 2; // alpha 8 / rank 4 = scale 2
                }
            }
            var file = Path.Combine(dir, "adapter_model.safetensors");
            SafetensorsFile.SaveAtomic(file, peft);
            using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
            using var lora = LoraAdapters.Load(unet, file);
            Assert.Equal(2.0, lora[lora.ModulePaths[0]].Scale, 12);
            var io = ModelFixtures.Io(ModelFixtures.LoraFolder);
            TensorAssert.Close(io["out"], ModelFixtures.Run(unet, io), what: "out with PEFT-named LoRA");
        }
        finally
        {
            ModelFixtures.Delete(dir);
        }
    }

    [Fact]
    public void MergeIntoBaseEqualsAdapterOutput()
    {
        using var scope = NewDisposeScope();
        using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
        var io = ModelFixtures.Io(ModelFixtures.UnetFolder);
        var lora = LoraAdapters.Attach(unet, 4, 8, gen: new Generator(3));
        RandomiseUp(lora, 5);
        var withAdapters = ModelFixtures.Run(unet, io);
        lora.MergeIntoBase();
        Assert.Equal(0, lora.Count);
        TensorAssert.Close(withAdapters, ModelFixtures.Run(unet, io), atol: 1e-5, rtol: 1e-4, what: "merged");
    }

    [Fact]
    public void AdaptersStayFloat32OnABFloat16Base()
    {
        using var scope = NewDisposeScope();
        using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder, ScalarType.BFloat16, CPU);
        using var lora = LoraAdapters.Load(unet, ModelFixtures.LoraFile);
        Assert.All(lora.Parameters, p => Assert.Equal(ScalarType.Float32, p.dtype));
        var io = ModelFixtures.Io(ModelFixtures.LoraFolder);
        var sample = io["sample"].to(ScalarType.BFloat16);
        var output = unet.call(sample, io["timestep"], io["encoder_hidden_states"]);
        Assert.Equal(ScalarType.BFloat16, output.dtype);
        var expected = io["out"];
        double range = expected.abs().max().item<float>();
        TensorAssert.Close(expected, output.to(ScalarType.Float32), atol: 0.05 * range, rtol: 0.05, what: "bf16 base + fp32 LoRA");
        output.to(ScalarType.Float32).pow(2).mean().backward();
        Assert.All(lora.Parameters, p => Assert.Equal(ScalarType.Float32, p.grad!.dtype));
        Assert.True(lora.Parameters[1].grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void UnknownKeyIsReportedWithKeyAndFile()
    {
        var file = WriteModifiedFixture(d => d["unet.conv_in.lora.weird"] = zeros(2, 2));
        try
        {
            using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
            var e = Assert.Throws<ModelLoadException>(() => LoraAdapters.Load(unet, file));
            Assert.Contains("unet.conv_in.lora.weird", e.Message);
            Assert.Contains(file, e.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void LayerTheUnetLacksIsReported()
    {
        const string key = "unet.down_blocks.9.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight";
        var file = WriteModifiedFixture(d => d[key] = zeros(4, 32));
        try
        {
            using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
            var e = Assert.Throws<ModelLoadException>(() => LoraAdapters.Load(unet, file));
            Assert.Contains(key, e.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void ShapeMismatchIsReportedWithKeyAndFile()
    {
        const string key = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora.down.weight";
        var file = WriteModifiedFixture(d => d[key] = zeros(4, 25));
        try
        {
            using var unet = UNet2DConditionModel.FromPretrained(ModelFixtures.UnetFolder);
            var e = Assert.Throws<ModelLoadException>(() => LoraAdapters.Load(unet, file));
            Assert.Contains(key, e.Message);
            Assert.Contains("[4, 25]", e.Message);
            Assert.Contains(file, e.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static string WriteModifiedFixture(Action<Dictionary<string, Tensor>> edit)
    {
        using var scope = NewDisposeScope();
        var tensors = SafetensorsFile.Load(ModelFixtures.LoraFile);
        edit(tensors);
        var file = Path.Combine(Path.GetTempPath(), $"ddpo-lora-{Guid.NewGuid():N}.safetensors");
        SafetensorsFile.SaveAtomic(file, tensors);
        return file;
    }

    private static void RandomiseUp(LoraAdapters lora, long seed)
    {
        var gen = new Generator((ulong)seed);
        using var _ = no_grad();
        for (int i = 1; i < lora.Parameters.Count; i += 2)
        {
            lora.Parameters[i].copy_(randn(lora.Parameters[i].shape, generator: gen) * 0.05);
        }
    }
}
