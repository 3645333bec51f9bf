using Ddpo.Cli;
using Ddpo.Imaging;
using Ddpo.Models.Lora;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Runs;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;

namespace Ddpo.Tests.Pipelines;

/// <summary>
/// <c>ddpo init-tiny --family flux</c> and the command line on the small FLUX it writes: sample, train (DanceGRPO's
/// GRPO with Dance-SDE and LoRA on the transformer), resume, eval, report and export of the merged transformer.
/// </summary>
[Collection("cli")]
public sealed class TinyFluxTests
{
    private static string[] TrainArgs(string model, string runDir, int epochs) =>
    [
        "train", "--preset", "flux-compressibility-grpo", "--model", model, "--run-dir", runDir, "--epochs", epochs.ToString(),
        "--set", "prompt_fn=animals_train", "--set", "sample.num_steps=3", "--set", "sample.resolution=32",
        "--set", "sample.max_sequence_length=16", "--set", "sample.samples_per_epoch=8", "--set", "sample.group_size=4",
        "--set", "sample.batch_size=4", "--set", "train.batch_size=4", "--set", "train.total_batch_size=8",
        "--set", "lora.rank=4", "--set", "lora.alpha=8", "--set", "train.learning_rate=1e-3",
        "--set", "pretrained.dtype=fp32", "--set", "logging.num_eval_images=2", "--set", "save_freq=1", "--device", "cpu",
    ];

    [Fact]
    public void InitTinyFluxTrainsResumesEvaluatesAndExportsFromTheCommandLine()
    {
        var root = TestPaths.NewTempDir();
        var model = Path.Combine(root, "model");
        Assert.Equal(0, CliApp.Run(["init-tiny", "--family", "flux", "--out", model, "--seed", "2"]));
        foreach (var part in new[] { "model_index.json", "transformer/diffusion_pytorch_model.safetensors", "vae/config.json",
                     "text_encoder/model.safetensors", "text_encoder_2/model.safetensors", "tokenizer/vocab.json", "tokenizer_2/spiece.model",
                     "scheduler/scheduler_config.json" })
        {
            Assert.True(File.Exists(Path.Combine(model, part)), part);
        }
        using (var pipeline = PipelineLoader.FromPretrained(model))
        {
            Assert.Equal(32, Assert.IsType<FluxPipeline>(pipeline).DefaultImageSize);
        }

        var output = Path.Combine(root, "out");
        Assert.Equal(0, CliApp.Run(["sample", "--model", model, "--prompt", "a cat riding a bike", "--steps", "3", "--batch", "2", "--seed", "7", "--out", output]));
        var pngs = Directory.GetFiles(output, "0*.png").Order().ToArray();
        Assert.Equal(2, pngs.Length);
        using (var image = ImageTensor.Load(pngs[0]))
        {
            Assert.Equal(new long[] { 3, 32, 32 }, image.shape);
        }

        var run = Path.Combine(root, "run");
        Assert.Equal(0, CliApp.Run(TrainArgs(model, run, 1)));
        Assert.Equal(0, CliApp.Run([.. TrainArgs(model, run, 2), "--resume"]));
        var metrics = MetricsLog.ReadAll(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal([0.0, 1.0], metrics.Select(m => (double)m.Epoch).ToArray());
        Assert.All(metrics, m => Assert.True(double.IsFinite((double)m["reward_mean"]!)));
        Assert.True(File.Exists(Path.Combine(run, "report.html")));
        Assert.Equal(0, CliApp.Run(["eval", "--run", run, "--seeds", "1", "--max-prompts", "2", "--device", "cpu"]));

        var loraFile = Path.Combine(run, "lora.safetensors");
        var keys = Ddpo.Models.Loading.SafetensorsFile.Load(loraFile);
        Assert.Contains("transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight", keys.Keys);
        Assert.Contains("transformer.transformer_blocks.0.attn.add_k_proj.lora_B.weight", keys.Keys);
        foreach (var t in keys.Values) t.Dispose();

        var merged = Path.Combine(root, "merged");
        Assert.Equal(0, CliApp.Run(["export", "--model", model, "--lora", loraFile, "--out", merged]));
        var options = new SamplingOptions { NumSteps = 3, GuidanceScale = 3.5 };
        using var withLora = FluxPipeline.FromPretrained(model);
        var adapters = LoraAdapters.Load(((ITextToImagePipeline)withLora).Policy.Denoiser, loraFile, "transformer");
        using var exported = FluxPipeline.FromPretrained(merged);
        using var a = withLora.Sample(["a cat"], options, new torch.Generator(3));
        using var b = exported.Sample(["a cat"], options, new torch.Generator(3));
        TensorAssert.Close(a.Images, b.Images, atol: 1e-4, what: "merged export vs LoRA adapters");
        adapters.Detach();
        Directory.Delete(root, true);
    }
}
