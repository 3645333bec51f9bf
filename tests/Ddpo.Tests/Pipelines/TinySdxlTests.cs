using Ddpo.Cli;
using Ddpo.Imaging;
using Ddpo.Models.Lora;
using Ddpo.Models.Unet;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Runs;
using Ddpo.Tests.Cli;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;

namespace Ddpo.Tests.Pipelines;

/// <summary>
/// <c>ddpo init-tiny --family sdxl</c> and the whole command line on the small Stable Diffusion XL it writes: sample,
/// train (GRPO with LoRA on the UNet, DDIM), resume, eval, report and export of the merged UNet.
/// </summary>
[Collection("cli")]
public sealed class TinySdxlTests
{
    private static string[] TrainArgs(string model, string runDir, int epochs) =>
    [
        "train", "--preset", "compressibility-grpo", "--model", model, "--run-dir", runDir, "--epochs", epochs.ToString(),
        "--set", "prompt_fn=animals_train", "--set", "sample.num_steps=3", "--set", "sample.resolution=32",
        "--set", "sample.samples_per_epoch=8", "--set", "sample.group_size=4",
        "--set", "sample.batch_size=4", "--set", "train.batch_size=4", "--set", "train.total_batch_size=8",
        "--set", "lora.rank=4", "--set", "lora.alpha=8",
        "--set", "pretrained.dtype=fp32", "--set", "logging.num_eval_images=2", "--set", "save_freq=1", "--device", "cpu",
    ];

    [Fact]
    public void InitTinySdxlWritesAPipelineTheLoaderReadsAndTheCliSamples()
    {
        var root = TestPaths.NewTempDir();
        var model = Path.Combine(root, "model");
        Assert.Equal(0, CliApp.Run(["init-tiny", "--family", "sdxl", "--out", model, "--seed", "3"]));
        foreach (var part in new[] { "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                     "vae/config.json", "text_encoder/model.safetensors", "text_encoder_2/model.safetensors",
                     "tokenizer/vocab.json", "tokenizer_2/merges.txt", "scheduler/scheduler_config.json" })
        {
            Assert.True(File.Exists(Path.Combine(model, part)), part);
        }
        using (var pipeline = PipelineLoader.FromPretrained(model, torch.CPU, torch.ScalarType.Float32))
        {
            var sdxl = Assert.IsType<StableDiffusionXLPipeline>(pipeline);
            Assert.Equal(32, sdxl.DefaultImageSize);
            Assert.True(sdxl.ForceZerosForEmptyPrompt);
            Assert.Equal(0.13025, sdxl.Vae.ScalingFactor);
            var unet = sdxl.Unet.Config;
            Assert.True(unet.IsTextTime);
            Assert.Equal(["DownBlock2D", "CrossAttnDownBlock2D"], unet.DownBlockTypes);
            Assert.Equal([1, 2], unet.TransformerLayersPerBlock);
            // Up block 0 mirrors down block 1: two transformer layers (the reversed transformer_layers_per_block).
            Assert.Contains(sdxl.Unet.named_parameters(), p => p.name.StartsWith("up_blocks.0.attentions.0.transformer_blocks.1.", StringComparison.Ordinal));
            Assert.DoesNotContain(sdxl.Unet.named_parameters(), p => p.name.StartsWith("up_blocks.1.attentions", StringComparison.Ordinal));
        }

        var output = Path.Combine(root, "out");
        Assert.Equal(0, CliApp.Run(["sample", "--model", model, "--prompt", "a cat riding a bike", "--steps", "3", "--batch", "2", "--seed", "7", "--out", output]));
        var pngs = Directory.GetFiles(output, "0*.png").Order().ToArray();
        Assert.Equal(2, pngs.Length);
        using (var image = ImageTensor.Load(pngs[0]))
        {
            Assert.Equal(new long[] { 3, 32, 32 }, image.shape);
        }

        // The transformer writers' options are refused with --family sdxl, as are a pixel-space model and a tokenizer.
        var (code, text) = CliTests.Capture(() => CliApp.Run(["init-tiny", "--family", "sdxl", "--out", Path.Combine(root, "x"), "--head-dim", "8"]));
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("--head-dim", text);
        (code, text) = CliTests.Capture(() => CliApp.Run(["init-tiny", "--family", "sdxl", "--out", Path.Combine(root, "y"), "--no-vae"]));
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("--no-vae", text);
        Directory.Delete(root, true);
    }

    [Fact]
    public void TrainResumeEvalReportAndExportWorkOnStableDiffusionXL()
    {
        var root = TestPaths.NewTempDir();
        var model = Path.Combine(root, "model");
        Assert.Equal(0, CliApp.Run(["init-tiny", "--family", "sdxl", "--out", model]));
        var run = Path.Combine(root, "run");
        Assert.Equal(0, CliApp.Run(TrainArgs(model, run, 1)));
        Assert.Equal(0, CliApp.Run([.. TrainArgs(model, run, 2), "--resume"]));
        var metrics = MetricsLog.ReadAll(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal([0.0, 1.0], metrics.Select(m => (double)m.Epoch).ToArray());
        Assert.All(metrics, m => Assert.True(double.IsFinite((double)m["reward_mean"]!)));
        Assert.True(File.Exists(Path.Combine(run, "report.html")));

        // The adapters are saved as diffusers' SDXL pipelines read them (load_lora_weights: "unet." + the module path).
        var loraFile = Path.Combine(run, "lora.safetensors");
        var keys = Ddpo.Models.Loading.SafetensorsFile.Load(loraFile);
        try
        {
            Assert.NotEmpty(keys);
            Assert.All(keys.Keys, k => Assert.Matches(@"^unet\.(down_blocks|mid_block|up_blocks)\..*\.attn[12]\.(to_q|to_k|to_v|to_out\.0)\.lora\.(down|up)\.weight$", k));
            Assert.Contains("unet.up_blocks.0.attentions.0.transformer_blocks.1.attn2.to_k.lora.down.weight", keys.Keys);
        }
        finally
        {
            foreach (var t in keys.Values) t.Dispose();
        }

        Assert.Equal(0, CliApp.Run(["eval", "--run", run, "--seeds", "1", "--max-prompts", "2", "--device", "cpu"]));
        Assert.True(File.Exists(Path.Combine(run, "eval", "eval-epoch-0001.json")));

        // The export merges the LoRA into unet/ (still a text_time UNet) and images match base + adapters.
        var merged = Path.Combine(root, "merged");
        Assert.Equal(0, CliApp.Run(["export", "--model", model, "--lora", loraFile, "--out", merged]));
        Assert.True(UNet2DConditionConfig.Load(Path.Combine(merged, "unet", "config.json")).IsTextTime);
        var options = new SamplingOptions { NumSteps = 3, GuidanceScale = 5.0 };
        using var withLora = StableDiffusionXLPipeline.FromPretrained(model);
        var adapters = LoraAdapters.Load(((ITextToImagePipeline)withLora).Policy.Denoiser, loraFile);
        using var exported = StableDiffusionXLPipeline.FromPretrained(merged);
        using var a = withLora.Sample(["a cat"], options, new torch.Generator(3));
        using var b = exported.Sample(["a cat"], options, new torch.Generator(3));
        using var basePipeline = StableDiffusionXLPipeline.FromPretrained(model);
        using var c = basePipeline.Sample(["a cat"], options, new torch.Generator(3));
        TensorAssert.Close(a.Images, b.Images, atol: 1e-4, what: "merged export vs LoRA adapters");
        Assert.True((a.Images - c.Images).abs().max().item<float>() > 1e-6, "the trained LoRA changes the images");
        adapters.Detach();
        Directory.Delete(root, true);
    }
}
