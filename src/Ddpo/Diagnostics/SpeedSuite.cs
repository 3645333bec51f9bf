using System.Diagnostics;
using System.Text.Json;
using Ddpo.Benchmarks;
using Ddpo.Config;
using Ddpo.Models.Lora;
using Ddpo.Models.Unet;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Rewards;
using Ddpo.Schedulers;
using Ddpo.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Diagnostics;

/// <summary>
/// Our side of the speed table, on random weights: the UNet forward in fp16 and bf16, a LoRA training step
/// (forward + backward + AdamW), a VAE decode, one guided sampling run, and one reduced DDPO epoch through the real
/// trainer with its time per phase and peak memory. <c>tools/gpu/torch_bench.py</c> measures the same rows with
/// PyTorch + diffusers and the same sizes (keep the keys and sizes of both in step).
/// </summary>
internal static class SpeedSuite
{
    private static double Time(Action action, int warmup, int iterations, Device device) =>
        MedianTimer.Milliseconds(action, warmup, iterations, device);

    /// <summary>Runs every row; <paramref name="onRow"/> sees each as it is made. A failing row is reported and skipped.</summary>
    public static List<SpeedRow> Run(GpuCheckSizes sizes, Device device, Action<SpeedRow> onRow, Action<string, Exception> onError)
    {
        var rows = new List<SpeedRow>();
        void Try(string key, Func<IEnumerable<SpeedRow>> measure)
        {
            try
            {
                foreach (var row in measure())
                {
                    rows.Add(row);
                    onRow(row);
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                onError(key, e);
            }
        }
        Try("unet_forward", () => UnetRows(sizes, device));
        Try("lora_train_step", () => LoraStepRows(sizes, device));
        using var pipeline = RandomPipeline.Build(sizes, device, device.type == DeviceType.CUDA ? ScalarType.Float16 : ScalarType.Float32);
        Try("vae_decode", () => [VaeDecodeRow(sizes, pipeline)]);
        Try("sampling", () => [SamplingRow(sizes, pipeline)]);
        Try("ddpo_epoch", () => [EpochRow(sizes, pipeline)]);
        return rows;
    }

    private static string Dt(ScalarType t) => Runtime.TorchRuntime.DTypeName(t);

    private static (Tensor X, Tensor T, Tensor Ctx) UnetInputs(UNet2DConditionConfig c, int batch, ScalarType dtype, Device device)
    {
        int size = c.SampleSize ?? 64;
        return (randn(new long[] { batch, c.InChannels, size, size }, dtype: dtype, device: device),
            full(new long[] { batch }, 500L, dtype: ScalarType.Int64, device: device),
            randn(new long[] { batch, 77, c.CrossAttentionDim[0] }, dtype: dtype, device: device));
    }

    private static IEnumerable<SpeedRow> UnetRows(GpuCheckSizes sizes, Device device)
    {
        var rows = new List<SpeedRow>();
        foreach (var dtype in new[] { ScalarType.Float16, ScalarType.BFloat16 })
        {
            using var scope = NewDisposeScope();
            using var unet = new UNet2DConditionModel(sizes.Unet, dtype, device);
            unet.eval();
            var (x, t, ctx) = UnetInputs(sizes.Unet, sizes.ForwardBatch, dtype, device);
            void Forward()
            {
                using var inner = NewDisposeScope();
                using var _ = inference_mode();
                unet.forward(x, t, ctx);
            }
            double flops = FlopCounter.Count(unet, Forward);
            double ms = Time(Forward, sizes.Warmup, sizes.Iterations, device);
            rows.Add(new SpeedRow($"unet_forward_{Dt(dtype)}_b{sizes.ForwardBatch}",
                $"UNet forward, {Dt(dtype)}, batch {sizes.ForwardBatch}", ms, new Dictionary<string, double>
                {
                    ["gflop_per_sample"] = flops / sizes.ForwardBatch / 1e9,
                    ["tflops"] = flops / (ms / 1000) / 1e12,
                }));
        }
        return rows;
    }

    /// <summary>fp16 frozen weights, fp32 LoRA rank r on to_q/k/v/out, loss mean(out^2) in fp32, AdamW: as the reference.</summary>
    private static IEnumerable<SpeedRow> LoraStepRows(GpuCheckSizes sizes, Device device)
    {
        var rows = new List<SpeedRow>();
        var dtype = device.type == DeviceType.CUDA ? ScalarType.Float16 : ScalarType.Float32;
        using var unet = new UNet2DConditionModel(sizes.Unet, dtype, device);
        foreach (var p in unet.parameters()) p.requires_grad = false;
        using var lora = LoraAdapters.Attach(unet, sizes.LoraRank, sizes.LoraRank, gen: new Generator(1));
        using var optimizer = optim.AdamW(lora.Parameters, 3e-4);
        unet.train();
        foreach (var batch in sizes.TrainBatches)
        {
            using var scope = NewDisposeScope();
            var (x, t, ctx) = UnetInputs(sizes.Unet, batch, dtype, device);
            void Step()
            {
                using var inner = NewDisposeScope();
                var loss = unet.forward(x, t, ctx).to(ScalarType.Float32).pow(2).mean();
                loss.backward();
                optimizer.step();
                optimizer.zero_grad();
            }
            double ms = Time(Step, sizes.Warmup, sizes.Iterations, device);
            rows.Add(new SpeedRow($"lora_train_step_b{batch}", $"LoRA r{sizes.LoraRank} step (fwd+bwd+AdamW), {Dt(dtype)} weights, batch {batch}",
                ms, new Dictionary<string, double> { ["lora_params"] = lora.Parameters.Sum(p => p.numel()) }));
        }
        return rows;
    }

    private static SpeedRow VaeDecodeRow(GpuCheckSizes sizes, TextToImagePipeline pipeline)
    {
        using var scope = NewDisposeScope();
        var vae = pipeline.Vae!;
        int latent = sizes.Unet.SampleSize ?? 64;
        var z = randn(new long[] { sizes.DecodeBatch, 4, latent, latent }, dtype: pipeline.DType, device: pipeline.Device);
        double ms = Time(() =>
        {
            using var inner = NewDisposeScope();
            using var _ = inference_mode();
            vae.Decode(z);
        }, 1, Math.Min(3, sizes.Iterations), pipeline.Device);
        return new SpeedRow($"vae_decode_b{sizes.DecodeBatch}", $"VAE decode {sizes.DecodeBatch} x {sizes.ImageSize}^2, {Dt(pipeline.DType)}", ms,
            new Dictionary<string, double>());
    }

    private static SpeedRow SamplingRow(GpuCheckSizes sizes, TextToImagePipeline pipeline)
    {
        var prompts = Enumerable.Range(0, sizes.SampleImages).Select(i => i % 2 == 0 ? "a cat" : "a dog riding a bike").ToArray();
        var options = new SamplingOptions
        {
            NumSteps = sizes.Steps, GuidanceScale = sizes.Guidance, Eta = 1.0, FinalStep = DdimFinalStep.Ddpo, RecordTrajectory = true,
        };
        var policy = pipeline.Policy;
        double ms = Time(() =>
        {
            // What an epoch's sampling does through the policy: encode, sample with log-probs, decode.
            using var scope = NewDisposeScope();
            var (condition, unconditional) = PolicySampling.Conditions(policy, prompts, options);
            var rollout = policy.Sample(condition, unconditional, options, new Generator(1), null);
            policy.Decode(rollout.Final);
        }, 1, Math.Min(2, sizes.Iterations), pipeline.Device);
        return new SpeedRow($"sampling_{sizes.Steps}x{sizes.SampleImages}",
            $"guided sampling (g {sizes.Guidance}), {sizes.SampleImages} images, {sizes.Steps} steps, with log-probs and VAE decode, {Dt(pipeline.DType)}",
            ms, new Dictionary<string, double> { ["images_per_s"] = sizes.SampleImages / (ms / 1000) });
    }

    /// <summary>The configuration of the reduced epoch: the compressibility preset at the check's sizes.</summary>
    public static DdpoConfig EpochConfig(GpuCheckSizes s) => DdpoConfig.Load(null, "compressibility",
    [
        "num_epochs=1", $"sample.samples_per_epoch={s.EpochSamples}", $"sample.batch_size={s.EpochSampleBatch}",
        $"sample.num_steps={s.Steps}", $"sample.guidance_scale={s.Guidance}", $"train.batch_size={s.EpochTrainBatch}",
        $"train.total_batch_size={s.EpochTotalBatch}", $"lora.rank={s.LoraRank}", $"lora.alpha={s.LoraRank}",
        "logging.num_eval_images=0", "save_freq=1000",
    ]);

    /// <summary>
    /// The paper's JPEG compressibility reward where the system's libjpeg.so.62 loads; elsewhere (a GPU machine
    /// without libjpeg62-turbo) the image-contrast reward, so that the epoch is still timed (the reward is a small
    /// part of it), and the row says so.
    /// </summary>
    private static (IRewardFunction Reward, string Name) EpochReward()
    {
        var jpeg = new JpegCompressibilityReward();
        try
        {
            using var probe = zeros(1, 3, 8, 8);
            jpeg.ScoreAsync(new RewardBatch(probe, ["probe"], [new Dictionary<string, string>()]), CancellationToken.None).GetAwaiter().GetResult();
            return (jpeg, "JPEG reward");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return (ImageStatisticReward.Contrast(), $"image-contrast reward (JPEG unavailable: {e.GetBaseException().Message})");
        }
    }

    private static SpeedRow EpochRow(GpuCheckSizes sizes, TextToImagePipeline pipeline)
    {
        var config = EpochConfig(sizes);
        var (reward, rewardName) = EpochReward();
        var runDir = Path.Combine(Path.GetTempPath(), $"ddpo-gpu-check-epoch-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            var clock = Stopwatch.StartNew();
            using var memory = new DeviceMemoryMonitor(pipeline.Device);
            using (var trainer = new DdpoTrainer(config, pipeline.Policy, runDir, resume: false, reward))
            {
                trainer.RunAsync().GetAwaiter().GetResult();
                trainer.Weights.Lora?.Detach();
            }
            UnetBenchmark.Synchronize(pipeline.Device);
            double total = clock.Elapsed.TotalSeconds;
            var line = File.ReadLines(Runs.RunFolder.At(runDir).MetricsFile).Last();
            using var doc = JsonDocument.Parse(line);
            double Get(string name) => doc.RootElement.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;
            return new SpeedRow("ddpo_epoch",
                $"DDPO-IS epoch: {sizes.EpochSamples} samples x {sizes.Steps} steps, g {sizes.Guidance}, LoRA r{sizes.LoraRank}, " +
                $"sample batch {sizes.EpochSampleBatch}, train batch {sizes.EpochTrainBatch}, {sizes.EpochTotalBatch} per optimizer step, {rewardName}",
                total * 1000, new Dictionary<string, double>
                {
                    ["sampling_s"] = Get("sampling_s"),
                    ["reward_s"] = Get("reward_s"),
                    ["training_s"] = Get("training_s"),
                    ["peak_memory_gib"] = memory.PeakGiB,
                    // random weights can make non-finite images: these say whether the update really ran
                    ["nonfinite_rewards"] = Get("nonfinite_rewards"),
                    ["optimizer_steps"] = Get("optimizer_steps"),
                    ["skipped_steps"] = Get("skipped_steps"),
                });
        }
        finally
        {
            try { Directory.Delete(runDir, recursive: true); } catch (IOException) { }
        }
    }
}
