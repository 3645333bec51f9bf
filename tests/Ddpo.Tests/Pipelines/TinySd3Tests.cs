using System.Text.Json;
using Ddpo.Cli;
using Ddpo.Imaging;
using Ddpo.Models.Lora;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Runs;
using Ddpo.Tests.Cli;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;

namespace Ddpo.Tests.Pipelines;

/// <summary>
/// <c>ddpo init-tiny --family sd3</c> and the whole command line on the small Stable Diffusion 3 it writes: sample,
/// train (Flow-GRPO's GRPO with LoRA on the transformer), resume, eval, report and export of the merged transformer.
/// </summary>
[Collection("cli")]
public sealed class TinySd3Tests
{
    private static string[] TrainArgs(string model, string runDir, int epochs) =>
    [
        "train", "--preset", "sd3.5-compressibility-grpo", "--model", model, "--run-dir", runDir, "--epochs", epochs.ToString(),
        "--set", "prompt_fn=animals_train", "--set", "sample.num_steps=3", "--set", "sample.resolution=32",
        "--set", "sample.max_sequence_length=16", "--set", "sample.samples_per_epoch=8", "--set", "sample.group_size=4",
        "--set", "sample.batch_size=4", "--set", "train.batch_size=4", "--set", "train.total_batch_size=8",
        "--set", "lora.rank=4", "--set", "lora.alpha=8",
        "--set", "pretrained.dtype=fp32", "--set", "logging.num_eval_images=2", "--set", "save_freq=1", "--device", "cpu",
    ];

    [Fact]
    public void InitTinySd3WritesAPipelineTheLoaderReadsAndTheCliSamples()
    {
        var root = TestPaths.NewTempDir();
        var model = Path.Combine(root, "model");
        Assert.Equal(0, CliApp.Run(["init-tiny", "--family", "sd3", "--out", model, "--seed", "3"]));
        foreach (var part in new[] { "model_index.json", "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors",
                     "vae/config.json", "text_encoder/model.safetensors", "text_encoder_2/model.safetensors", "text_encoder_3/model.safetensors",
                     "tokenizer/vocab.json", "tokenizer_2/merges.txt", "tokenizer_3/spiece.model", "scheduler/scheduler_config.json" })
        {
            Assert.True(File.Exists(Path.Combine(model, part)), part);
        }
        using (var pipeline = PipelineLoader.FromPretrained(model, torch.CPU, torch.ScalarType.Float32))
        {
            var sd3 = Assert.IsType<StableDiffusion3Pipeline>(pipeline);
            Assert.Equal(32, sd3.DefaultImageSize);
            using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(model, "scheduler", "scheduler_config.json")));
            Assert.Equal(3.0, config.RootElement.GetProperty("shift").GetDouble());
        }

        var output = Path.Combine(root, "out");
        Assert.Equal(0, CliApp.Run(["sample", "--model", model, "--prompt", "a cat riding a bike", "--steps", "3", "--batch", "2", "--seed", "7", "--out", output]));
        var pngs = Directory.GetFiles(output, "0*.png").Order().ToArray();
        Assert.Equal(2, pngs.Length);
        using (var image = ImageTensor.Load(pngs[0]))
        {
            Assert.Equal(new long[] { 3, 32, 32 }, image.shape);
        }

        // The UNet writer's options are refused with --family sd3, and the other way round.
        var (code, text) = CliTests.Capture(() => CliApp.Run(["init-tiny", "--family", "sd3", "--out", Path.Combine(root, "x"), "--channels", "16,32"]));
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("--channels", text);
        (code, text) = CliTests.Capture(() => CliApp.Run(["init-tiny", "--out", Path.Combine(root, "y"), "--head-dim", "8"]));
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("--head-dim", text);
        Directory.Delete(root, true);
    }

    [Fact]
    public void TrainResumeEvalReportAndExportWorkOnStableDiffusion3()
    {
        var root = TestPaths.NewTempDir();
        var model = Path.Combine(root, "model");
        Assert.Equal(0, CliApp.Run(["init-tiny", "--family", "sd3", "--out", model]));
        var run = Path.Combine(root, "run");
        Assert.Equal(0, CliApp.Run(TrainArgs(model, run, 1)));
        Assert.Equal(0, CliApp.Run([.. TrainArgs(model, run, 2), "--resume"]));
        var metrics = MetricsLog.ReadAll(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal([0.0, 1.0], metrics.Select(m => (double)m.Epoch).ToArray());
        Assert.All(metrics, m => Assert.True(double.IsFinite((double)m["reward_mean"]!)));
        Assert.True(File.Exists(Path.Combine(run, "report.html")));

        // The adapters are saved as diffusers' SD3 pipelines name them (PEFT keys under "transformer.").
        var loraFile = Path.Combine(run, "lora.safetensors");
        using (var keys = new TensorDictionary(Ddpo.Models.Loading.SafetensorsFile.Load(loraFile)))
        {
            Assert.NotEmpty(keys.Items);
            Assert.All(keys.Items.Keys, k => Assert.Matches(@"^transformer\.transformer_blocks\.\d+\.attn\d?\.[a-z_0-9.]+\.lora_[AB]\.weight$", k));
            Assert.Contains("transformer.transformer_blocks.0.attn.add_q_proj.lora_A.weight", keys.Items.Keys);
        }

        Assert.Equal(0, CliApp.Run(["eval", "--run", run, "--seeds", "1", "--max-prompts", "2", "--device", "cpu"]));
        Assert.True(File.Exists(Path.Combine(run, "eval", "eval-epoch-0001.json")));

        // The export merges the LoRA into transformer/ and images match base + adapters.
        var merged = Path.Combine(root, "merged");
        Assert.Equal(0, CliApp.Run(["export", "--model", model, "--lora", loraFile, "--out", merged]));
        var options = new SamplingOptions { NumSteps = 3, GuidanceScale = 4.5 };
        using var withLora = StableDiffusion3Pipeline.FromPretrained(model);
        var adapters = LoraAdapters.Load(((ITextToImagePipeline)withLora).Policy.Denoiser, loraFile, "transformer");
        using var exported = StableDiffusion3Pipeline.FromPretrained(merged);
        using var a = withLora.Sample(["a cat"], options, new torch.Generator(3));
        using var b = exported.Sample(["a cat"], options, new torch.Generator(3));
        TensorAssert.Close(a.Images, b.Images, atol: 1e-4, what: "merged export vs LoRA adapters");
        adapters.Detach();
        Directory.Delete(root, true);
    }

    /// <summary>Disposes a loaded state dict's tensors.</summary>
    private sealed class TensorDictionary(Dictionary<string, torch.Tensor> items) : IDisposable
    {
        public Dictionary<string, torch.Tensor> Items { get; } = items;

        public void Dispose()
        {
            foreach (var t in Items.Values) t.Dispose();
        }
    }
}
