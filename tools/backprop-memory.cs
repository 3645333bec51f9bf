#:project ../src/Ddpo/Ddpo.csproj
#:property PublishAot=false
#:property JsonSerializerIsReflectionEnabledByDefault=true
// Peak resident memory of one reward-backpropagation training step (DRaFT-K: sampling, the backward pass through the
// last K steps, an AdamW step on LoRA weights) for K = 1, 4, 10 of 10 steps, with gradient checkpointing off and on, on
// a small init-tiny Stable Diffusion pipeline (CPU). Linux only: the peak (VmHWM) is reset before each step through
// /proc/self/clear_refs, and the step's figure is the peak minus the resident memory just before it.
// usage: dotnet run -c Release tools/backprop-memory.cs -- [BATCH=2] [CHANNELS=64] [LATENT=32]   (README: -- 2 16 16)
using Ddpo.Config;
using Ddpo.Pipelines;
using Ddpo.Rewards;
using Ddpo.Runtime;
using Ddpo.Training;
using TorchSharp;
using static TorchSharp.torch;

int batch = args.Length > 0 ? int.Parse(args[0]) : 2;
int channels = args.Length > 1 ? int.Parse(args[1]) : 64;
int latent = args.Length > 2 ? int.Parse(args[2]) : 32;
var dir = Path.Combine(Path.GetTempPath(), $"ddpo-backprop-memory-{Environment.ProcessId}");
TinyPipelineWriter.Write(new TinyPipelineOptions { UnetChannels = [channels, 2 * channels], SampleSize = latent, VaeChannels = [32, 64] }, dir);
try
{
    using var pipeline = TextToImagePipeline.FromPretrained(dir);
    var policy = pipeline.Policy;
    var weights = TrainableWeights.WithLora(policy.Denoiser, 4, 4, seed: 1, targets: policy.LoraTargets);
    using var optimizer = optim.AdamW(weights.Parameters, 1e-4);
    var prompts = Enumerable.Range(0, batch).Select(i => $"a photo of animal {i}").ToArray();
    using var condition = policy.Encode(prompts);
    using var one = policy.Encode([""]);
    using var unconditional = one.Expand(batch);
    string cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':')[1].Trim() ?? "unknown CPU";
    Console.WriteLine($"{cpu}; {Environment.ProcessorCount} threads; UNet channels [{channels}, {2 * channels}], latents {latent}x{latent} " +
        $"(images {latent * pipeline.VaeScaleFactor}x{latent * pipeline.VaeScaleFactor}), batch {batch}, 10 DDIM steps, CFG 5, LoRA r4");
    Console.WriteLine("| K | checkpointing | peak RSS of the step (MiB) | seconds |");
    Console.WriteLine("|---|---|---|---|");
    Step(1, false); // warm-up (kernels, allocator pools), not reported
    foreach (int k in new[] { 1, 4, 10 })
    {
        foreach (bool checkpointing in new[] { false, true })
        {
            var (mib, seconds) = Step(k, checkpointing);
            Console.WriteLine($"| {k} | {(checkpointing ? "on" : "off")} | {mib:F0} | {seconds:F1} |");
        }
    }

    (double Mib, double Seconds) Step(int k, bool checkpointing)
    {
        var config = DdpoConfig.Load(null, null, ["algorithm=\"draft\"", $"draft.k={k}", $"draft.checkpointing={(checkpointing ? "true" : "false")}",
            "sample.num_steps=10", "sample.guidance_scale=5.0", $"sample.batch_size={batch}", $"train.batch_size={batch}", "device=\"cpu\""]);
        var algorithm = new RewardBackprop(policy, config, ImageStatisticReward.Brightness(), weights.Parameters);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        NativeHeap.Trim();
        File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM to the current RSS
        long before = Status("VmRSS:");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using (var scope = NewDisposeScope())
        {
            using var generator = new Generator(7);
            var loss = algorithm.Loss(new BackpropBatch(prompts, condition, unconditional, generator));
            loss.Loss.backward();
            optimizer.step();
            optimizer.zero_grad();
        }
        double seconds = clock.Elapsed.TotalSeconds;
        return ((Status("VmHWM:") - before) / 1024.0, seconds);
    }
}
finally
{
    Directory.Delete(dir, true);
}

static long Status(string field) =>
    long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith(field))[field.Length..].Trim().Split(' ')[0]);
