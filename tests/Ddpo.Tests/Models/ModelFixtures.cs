using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Tests.Support;
using static TorchSharp.torch;

namespace Ddpo.Tests.Models;

/// <summary>Shared helpers for the model tests: fixture paths, inputs, temporary model folders.</summary>
internal static class ModelFixtures
{
    public static string UnetFolder => TestPaths.Fixture("unet_sd1_tiny");
    public static string VaeFolder => TestPaths.Fixture("vae_tiny");
    public static string LoraFolder => TestPaths.Fixture("lora_sd1_tiny");
    public static string LoraFile => Path.Combine(LoraFolder, "pytorch_lora_weights.safetensors");

    /// <summary>Inputs/outputs of a fixture (io.safetensors).</summary>
    public static Dictionary<string, Tensor> Io(string folder) => SafetensorsFile.Load(Path.Combine(folder, "io.safetensors"));

    /// <summary>Runs the UNet on the fixture inputs without gradients.</summary>
    public static Tensor Run(UNet2DConditionModel unet, Dictionary<string, Tensor> io)
    {
        using var _ = no_grad();
        return unet.call(io["sample"], io["timestep"], io["encoder_hidden_states"]);
    }

    /// <summary>
    /// Copies the tiny UNet fixture into a fresh temporary folder with its weights rewritten by
    /// <paramref name="edit"/> (under <paramref name="weightsName"/>); returns the folder.
    /// </summary>
    public static string UnetCopy(Action<Dictionary<string, Tensor>>? edit = null,
        string weightsName = "diffusion_pytorch_model.safetensors")
    {
        var dir = TestPaths.NewTempDir("ddpo-unet");
        File.Copy(Path.Combine(UnetFolder, "config.json"), Path.Combine(dir, "config.json"));
        var weights = SafetensorsFile.Load(Path.Combine(UnetFolder, "diffusion_pytorch_model.safetensors"));
        try
        {
            edit?.Invoke(weights);
            SafetensorsFile.SaveAtomic(Path.Combine(dir, weightsName), weights);
        }
        finally
        {
            StateDictLoader.DisposeAll(weights);
        }
        return dir;
    }

    /// <summary>Deletes a temporary folder, ignoring errors.</summary>
    public static void Delete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
