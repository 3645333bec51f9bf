using Ddpo.Models.Lora;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Rewards;
using Ddpo.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Benchmarks;

/// <summary>Throughput of a pipeline in DDPO's two phases, with the time split by component.</summary>
/// <param name="Batch">Images per sampling batch (and per training micro-step).</param>
/// <param name="Steps">Denoising steps.</param>
/// <param name="SamplingImagesPerSecond">End-to-end sampling throughput (text encoder, UNet with guidance, decoding).</param>
/// <param name="UnetMsPerStep">One guided UNet evaluation of the batch.</param>
/// <param name="TextEncoderMs">Encoding the batch's prompts.</param>
/// <param name="VaeMs">Decoding the batch to images (0 in pixel space).</param>
/// <param name="RewardMs">Scoring the batch's images.</param>
/// <param name="TrainMsPerStep">One DDPO training micro-step (guided forward, log-prob, backward) for the batch.</param>
/// <param name="OptimizerMs">One AdamW step with gradient clipping.</param>
/// <param name="TrainTimestepsPerSecond">Sample-timesteps trained per second (batch / micro-step time).</param>
internal sealed record PipelineBenchmarkResult(int Batch, int Steps, double SamplingImagesPerSecond, double UnetMsPerStep,
    double TextEncoderMs, double VaeMs, double RewardMs, double TrainMsPerStep, double OptimizerMs, double TrainTimestepsPerSecond);

/// <summary>Measures sampling and training throughput of a loaded pipeline.</summary>
internal static class PipelineBenchmark
{
    /// <summary>Runs each measurement <paramref name="repeats"/> times after one warm-up and keeps the median.</summary>
    public static PipelineBenchmarkResult Run(TextToImagePipeline pipeline, IRewardFunction reward, int batch, int steps,
        double guidance, int loraRank = 4, int repeats = 3)
    {
        var prompts = Enumerable.Range(0, batch).Select(i => i % 2 == 0 ? "a cat" : "a dog riding a bike").ToArray();
        var options = new SamplingOptions { NumSteps = steps, GuidanceScale = guidance, Eta = 1.0, FinalStep = Schedulers.DdimFinalStep.Ddpo, RecordTrajectory = true };
        var device = pipeline.Device;
        double Time(Action action) => MedianTimer.Milliseconds(action, warmup: 1, repeats, device);

        Trajectory? kept = null;
        double sampleMs = Time(() =>
        {
            kept?.Dispose();
            var r = pipeline.Sample(prompts, options, new Generator(1));
            r.Images.Dispose();
            kept = r.Trajectory;
        });
        var trajectory = kept!;
        using var embeds = pipeline.EncodePrompts(prompts);
        using var negative = pipeline.EncodePrompts(Enumerable.Repeat("", batch).ToArray());
        var latents = trajectory.Latents[.., 0].clone();
        using var t = full(new long[] { batch }, trajectory.Timesteps[0], dtype: ScalarType.Int64, device: device);
        double textMs = Time(() => { using var e = pipeline.EncodePrompts(prompts); });
        double unetMs = Time(() => { using var _ = no_grad(); using var e = pipeline.PredictNoise(latents, t, embeds, guidance > 1 ? negative : null, guidance); });
        Tensor images = pipeline.DecodeToImages(trajectory.Latents[.., ^1]);
        double vaeMs = pipeline.Vae is null ? 0 : Time(() => { using var i = pipeline.DecodeToImages(trajectory.Latents[.., ^1]); });
        var batchForReward = new RewardBatch(images, prompts, prompts.Select(_ => (IReadOnlyDictionary<string, string>)new Dictionary<string, string>()).ToArray());
        double rewardMs = Time(() => reward.ScoreAsync(batchForReward, CancellationToken.None).GetAwaiter().GetResult());

        // Training: LoRA on the attention projections, one DDPO-IS micro-step.
        var lora = LoraAdapters.Attach(pipeline.Unet, loraRank, loraRank, gen: new Generator(2));
        try
        {
            using var optimizer = optim.AdamW(lora.Parameters, 3e-4);
            pipeline.Scheduler.SetTimesteps(steps);
            var next = trajectory.Latents[.., 1];
            var oldLogProb = trajectory.LogProbs[.., 0];
            using var advantages = ones(batch, device: device);
            double trainMs = Time(() =>
            {
                using var scope = NewDisposeScope();
                var eps = pipeline.PredictNoise(latents, t, embeds, guidance > 1 ? negative : null, guidance);
                var step = pipeline.Scheduler.Step(eps, t, latents, 1.0, prevSample: next, finalStep: Schedulers.DdimFinalStep.Ddpo);
                var (loss, _, _) = PolicyLoss.DdpoIs(step.LogProb, oldLogProb, advantages, 1e-4, 5);
                loss.backward();
            });
            double optimizerMs = Time(() =>
            {
                nn.utils.clip_grad_norm_(lora.Parameters, 1.0);
                optimizer.step();
            });
            optimizer.zero_grad();
            return new PipelineBenchmarkResult(batch, steps, batch / (sampleMs / 1000), unetMs, textMs, vaeMs, rewardMs,
                trainMs, optimizerMs, batch / (trainMs / 1000));
        }
        finally
        {
            lora.Detach();
            images.Dispose();
            trajectory.Dispose();
            latents.Dispose();
        }
    }
}
