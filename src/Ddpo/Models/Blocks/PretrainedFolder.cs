using Ddpo.Models.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpo.Models.Blocks;

/// <summary>Reading and writing diffusers model folders (<c>config.json</c> + <c>diffusion_pytorch_model*.safetensors</c>).</summary>
internal static class PretrainedFolder
{
    /// <summary>The weight file name diffusers writes.</summary>
    public const string WeightsName = "diffusion_pytorch_model.safetensors";

    /// <summary>The half-precision variant diffusers writes with <c>variant="fp16"</c>.</summary>
    public const string Fp16WeightsName = "diffusion_pytorch_model.fp16.safetensors";

    /// <summary>The config path of a model folder, after checking the folder exists.</summary>
    public static string ConfigPath(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new ModelLoadException($"{directory}: model folder not found");
        }
        return Path.Combine(directory, "config.json");
    }

    /// <summary>
    /// Builds a model with <paramref name="create"/>, loads the folder's weights into it strictly (disposing
    /// it on failure) and returns it in eval mode.
    /// </summary>
    public static T Load<T>(string directory, ScalarType dtype, Func<T> create) where T : nn.Module
    {
        var model = create();
        try
        {
            LoadWeights(model, directory, dtype);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return model;
    }

    /// <summary>
    /// Loads the folder's weights strictly into <paramref name="module"/> (converted to its dtype/device).
    /// Half-precision loads prefer the fp16 variant; full precision prefers the plain file.
    /// </summary>
    public static void LoadWeights(nn.Module module, string directory, ScalarType dtype)
    {
        string[] candidates = dtype is ScalarType.Float16 or ScalarType.BFloat16
            ? [Fp16WeightsName, WeightsName]
            : [WeightsName, Fp16WeightsName];
        var tensors = SafetensorsFile.LoadFromFolder(directory, candidates);
        try
        {
            var source = candidates.Select(c => Path.Combine(directory, c))
                .FirstOrDefault(p => File.Exists(p) || File.Exists(p + ".index.json")) ?? directory;
            StateDictLoader.LoadStrict(module, tensors, source);
        }
        finally
        {
            StateDictLoader.DisposeAll(tensors);
        }
    }

    /// <summary>Writes <c>config.json</c> and the module's state dict as <see cref="WeightsName"/>, both atomically.</summary>
    public static void Save(nn.Module module, string directory, string configJson)
    {
        Directory.CreateDirectory(directory);
        var state = module.state_dict();
        SafetensorsFile.SaveAtomic(Path.Combine(directory, WeightsName), state);
        ConfigJson.WriteFileAtomic(Path.Combine(directory, "config.json"), configJson);
    }
}
