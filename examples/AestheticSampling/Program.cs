// Samples images from a Stable Diffusion folder (diffusers layout) and scores them with the LAION aesthetic predictor
// (CLIP ViT-L/14 + the linear head), the paper's aesthetic reward.
// Usage: AestheticSampling MODEL_DIR CLIP_DIR HEAD.safetensors [--device cuda] ["a prompt" ...]
using Ddpo.Imaging;
using Ddpo.Pipelines;
using Ddpo.Policies;
using Ddpo.Rewards.Aesthetic;
using Ddpo.Runtime;
using TorchSharp;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: AestheticSampling MODEL_DIR CLIP_DIR HEAD.safetensors [--device cuda] [\"a prompt\" ...]");
    return 2;
}
var rest = args[3..].ToList();
int at = rest.IndexOf("--device");
var device = TorchRuntime.ResolveDevice(at >= 0 ? rest[at + 1] : "auto");
if (at >= 0) rest.RemoveRange(at, 2);
string[] prompts = rest.Count > 0 ? [.. rest] : ["a cat", "a dog riding a bike", "a bowl of fruit", "a lighthouse at dusk"];

using var pipeline = TextToImagePipeline.FromPretrained(args[0], device, TorchRuntime.ResolveDType("auto", device));
using var scorer = AestheticScorer.Load(args[1], args[2], device);
using var generator = new torch.Generator(42);
using var result = pipeline.Sample(prompts, new SamplingOptions { NumSteps = 50, GuidanceScale = 5.0 }, generator);
var scores = scorer.Score(result.Images);
Directory.CreateDirectory("aesthetic-samples");
for (int i = 0; i < prompts.Length; i++)
{
    ImageTensor.SavePng(result.Images[i], Path.Combine("aesthetic-samples", $"{i:D2}.png"));
    Console.WriteLine($"{scores[i],6:F3}  {prompts[i]}");
}
Console.WriteLine($"mean aesthetic score {scores.Average():F3}; images in aesthetic-samples/");
return 0;
