using System.Diagnostics;
using System.Text.Json;
using Ddpo.Data;
using Ddpo.Models.Loading;
using Ddpo.Pipelines;
using Ddpo.Tokenizers;
using Ddpo.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Pretraining;

/// <summary>One logged point of pretraining.</summary>
/// <param name="Step">Optimizer steps done.</param>
/// <param name="Loss">Mean denoising loss since the previous log line.</param>
/// <param name="LearningRate">Current learning rate.</param>
/// <param name="Seconds">Wall time since the start.</param>
internal sealed record PretrainLogEntry(int Step, double Loss, double LearningRate, double Seconds);

/// <summary>
/// Ordinary maximum-likelihood training of a text-to-image diffusion model (denoising score
/// matching: predict the noise added at a random timestep), the objective the DDPO paper
/// contrasts with RL. Used to make the built-in model from the synthetic emoji scenes. The
/// saved weights are an exponential moving average of the trained ones.
/// </summary>
internal sealed class DenoisingPretrainer(TextToImagePipeline pipeline, PretrainOptions options)
{
    /// <summary>Trains on <paramref name="data"/> and saves the UNet and text encoder into <paramref name="modelDirectory"/>.</summary>
    public PretrainLogEntry Train(EmojiDataset data, string modelDirectory, IProgress<PretrainLogEntry>? progress = null,
        CancellationToken ct = default)
    {
        options.Validate();
        if (data.Count == 0) throw new ArgumentException("the dataset is empty");
        var clock = Stopwatch.StartNew();
        var unet = pipeline.Unet;
        var text = pipeline.TextEncoder;
        var trainable = unet.parameters().ToList();
        foreach (var p in trainable) p.requires_grad = true;
        if (options.TrainTextEncoder)
        {
            var textParams = text.parameters().ToList();
            foreach (var p in textParams) p.requires_grad = true;
            trainable.AddRange(textParams);
        }
        using var ema = new EmaWeights(trainable, options.EmaDecay);
        using var optimizer = optim.AdamW(trainable, options.LearningRate, weight_decay: options.WeightDecay);
        var rng = new Random((int)(options.Seed & 0x7fffffff));
        var gen = new Generator(SeedMix.Derive(options.Seed, 0, "pretrain"));
        var log = new List<PretrainLogEntry>();
        var logPath = Path.Combine(modelDirectory, "pretrain_log.jsonl");
        double lossSum = 0;
        int lossCount = 0;
        PretrainLogEntry last = new(0, double.NaN, 0, 0);
        unet.train();
        text.train();
        for (int step = 1; step <= options.Steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            double lr = LearningRateAt(step);
            foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
            using (var scope = NewDisposeScope())
            {
                var indices = Enumerable.Range(0, options.BatchSize).Select(_ => (long)rng.Next(data.Count)).ToArray();
                var x0 = data.GetImages(indices).to(pipeline.Device);
                var captions = indices.Select(i => rng.NextDouble() < options.CaptionDropout ? "" : data.Captions[(int)i]).ToArray();
                var ids = pipeline.Tokenizer.EncodeBatch(captions, ClipTokenizer.DefaultMaxLength).to(pipeline.Device);
                var embeds = text.Encode(ids).LastHiddenState;
                var t = randint(0, pipeline.Scheduler.Config.NumTrainTimesteps, [options.BatchSize], dtype: ScalarType.Int64, generator: gen).to(pipeline.Device);
                var noise = randn(x0.shape, generator: gen).to(pipeline.Device);
                var noisy = pipeline.Scheduler.AddNoise(x0, noise, t);
                var prediction = unet.forward(noisy, t, embeds);
                var loss = nn.functional.mse_loss(prediction, pipeline.Scheduler.TrainingTarget(x0, noise, t));
                optimizer.zero_grad();
                loss.backward();
                if (options.MaxGradNorm > 0) nn.utils.clip_grad_norm_(trainable, options.MaxGradNorm);
                optimizer.step();
                ema.Update();
                lossSum += loss.item<float>();
                lossCount++;
            }
            if (step % options.LogEvery == 0 || step == options.Steps)
            {
                last = new PretrainLogEntry(step, lossSum / lossCount, lr, clock.Elapsed.TotalSeconds);
                lossSum = 0;
                lossCount = 0;
                log.Add(last);
                File.AppendAllText(logPath, JsonSerializer.Serialize(new { step = last.Step, loss = last.Loss, lr = last.LearningRate, seconds = Math.Round(last.Seconds, 1) }) + "\n");
                progress?.Report(last);
            }
            if (step % options.SaveEvery == 0 || step == options.Steps)
            {
                Save(ema, modelDirectory);
            }
        }
        unet.eval();
        text.eval();
        foreach (var p in trainable) p.requires_grad = false;
        return last;
    }

    private double LearningRateAt(int step)
    {
        if (step <= options.WarmupSteps) return options.LearningRate * step / Math.Max(1, options.WarmupSteps);
        double progress = (double)(step - options.WarmupSteps) / Math.Max(1, options.Steps - options.WarmupSteps);
        return options.LearningRate * (0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }

    private void Save(EmaWeights ema, string modelDirectory)
    {
        // Write the averaged weights, then put the raw ones back to continue training.
        using var swap = ema.SwapIn();
        pipeline.Unet.SavePretrained(Path.Combine(modelDirectory, "unet"));
        if (options.TrainTextEncoder)
        {
            pipeline.TextEncoder.SavePretrained(Path.Combine(modelDirectory, "text_encoder"));
        }
    }
}
