using System.Text.Json.Nodes;
using Ddpo.Models.Lora;
using Ddpo.Models.Transformers;
using Ddpo.Pipelines;
using Ddpo.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>
/// LoRA on the real SD3 transformers (built on the meta device): Flow-GRPO's 8 targets adapt exactly the manifest's
/// attention projections, and the file keys are the ones diffusers' SD3 <c>load_lora_weights</c> reads
/// (<c>transformer.&lt;module&gt;.lora_A.weight</c> [r, in] / <c>.lora_B.weight</c> [out, r]).
/// </summary>
public sealed class Sd3LoraKeysTests
{
    public static TheoryData<string, int, long> Models => new()
    {
        // name, adapted linears, LoRA parameters at rank 32 (counted from the manifests' shapes)
        { "sd3_medium", 191, 18_776_064 },
        { "sd3.5_medium", 243, 23_887_872 },
        { "sd3.5_large", 303, 47_161_344 },
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void FlowGrpoTargetsAdaptTheManifestsProjectionsUnderDiffusersKeys(string name, int linears, long parameters)
    {
        var manifest = (JsonObject)JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("manifests", $"{name}_transformer.json")))!;
        var keys = ((JsonObject)manifest["keys"]!).ToDictionary(kv => kv.Key, kv => kv.Value!.AsArray().Select(d => d!.GetValue<long>()).ToArray());
        var config = name switch
        {
            "sd3_medium" => SD3Transformer2DModelConfig.Sd3Medium(),
            "sd3.5_medium" => SD3Transformer2DModelConfig.Sd35Medium(),
            _ => SD3Transformer2DModelConfig.Sd35Large(),
        };
        using var model = new SD3Transformer2DModel(config, ScalarType.Float32, new Device(DeviceType.META));
        using var lora = LoraAdapters.Attach(model, 32, 64, StableDiffusion3Policy.FlowGrpoLoraTargets, component: "transformer");
        Assert.Equal(linears, lora.Count);
        Assert.Equal(parameters, lora.Parameters.Sum(p => p.numel()));

        // Every projection of the manifest that ends in a target is adapted, and nothing else.
        var expected = keys.Keys.Where(k => k.EndsWith(".weight", StringComparison.Ordinal))
            .Select(k => k[..^".weight".Length])
            .Where(m => StableDiffusion3Policy.FlowGrpoLoraTargets.Any(t => m.EndsWith("." + t, StringComparison.Ordinal)))
            .Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, lora.ModulePaths.Order(StringComparer.Ordinal).ToList());
        foreach (var path in lora.ModulePaths)
        {
            var weight = keys[path + ".weight"];
            Assert.Equal($"transformer.{path}.lora_A.weight", LoraKeys.DiffusersKey(path, LoraTensorKind.Down, "transformer"));
            Assert.Equal($"transformer.{path}.lora_B.weight", LoraKeys.DiffusersKey(path, LoraTensorKind.Up, "transformer"));
            Assert.True(LoraKeys.TryParse($"transformer.{path}.lora_A.weight", out var parsed, out var kind, "transformer"));
            Assert.Equal((path, LoraTensorKind.Down), (parsed, kind));
            var adapter = lora[path];
            Assert.Equal(new[] { 32L, weight[1] }, adapter.Down.shape);
            Assert.Equal(new[] { weight[0], 32L }, adapter.Up.shape);
        }
    }
}
