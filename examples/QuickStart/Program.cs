// Fine-tunes the built-in model so that its images get brighter: a reward written as a C# lambda, on prompts from a
// list. Prints each epoch's mean reward and saves the LoRA. Usage: QuickStart [EPOCHS [KEY=VALUE ...]] (default 12
// epochs; KEY=VALUE overrides a config key as `ddpo train --set` does, e.g. sample.samples_per_epoch=16).
using Ddpo;
using Ddpo.Rewards;
using Ddpo.Training;

var options = new DdpoTrainingOptions
{
    PromptList = ["a cat", "a dog", "a horse", "a frog", "a fish", "a lion"],
    Reward = DelegateReward.PerImage("brightness", (image, prompt, metadata) => image.mean().item<float>()),
    Epochs = args.Length > 0 ? int.Parse(args[0]) : 12,
    Set = [.. args.Skip(1)],
    RunDirectory = "runs/brightness",
    Outputs = RunOutputs.Minimal,
    OnEpoch = m => Console.WriteLine($"epoch {m.Epoch}: mean reward {m.RewardMean:F4} ± {m.RewardSem:F4}"),
};
using var run = DdpoRun.Create(options);
await run.RunAsync();
run.ExportWeights("brightness-lora.safetensors");
Console.WriteLine($"LoRA saved to brightness-lora.safetensors (and {run.WeightsFile})");
