using System.Text.Json.Nodes;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Rewards;

/// <summary>Compares a model's state dict (built on the meta device) with a refenv manifest: exact key set, every shape, the parameter count.</summary>
internal static class RewardManifestAssert
{
    public static void KeysAndShapes(JsonNode manifest, IDictionary<string, Tensor> stateDict)
    {
        var expected = ((JsonObject)manifest["keys"]!).ToDictionary(kv => kv.Key, kv => kv.Value!.AsArray().Select(d => d!.GetValue<long>()).ToArray());
        var actual = stateDict.ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(manifest["n_state_dict_keys"]!.GetValue<int>(), actual.Count);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected) Assert.True(shape.SequenceEqual(actual[key]), $"{key}: manifest [{string.Join(", ", shape)}], model [{string.Join(", ", actual[key])}]");
        Assert.Equal(manifest["n_parameters"]!.GetValue<long>(), stateDict.Values.Sum(t => t.numel()));
        Assert.All(stateDict.Values, t => Assert.Equal(DeviceType.META, t.device.type));
    }
}
