using Ddpo.Models.Lora;
using Ddpo.Models.Transformers;
using Ddpo.Models.Unet;
using Ddpo.Runtime;

namespace Ddpo.Pipelines;

/// <summary>Writes pipeline folders with fine-tuned weights merged in.</summary>
internal static class PipelineExporter
{
    /// <summary>
    /// Copies <paramref name="sourceDirectory"/> to <paramref name="outputDirectory"/> with the denoiser (the UNet, or
    /// an SD3 pipeline's transformer) replaced by the base one plus the LoRA of <paramref name="loraFile"/> merged into its weights
    /// (float32). The output is written to a temporary folder first, then renamed into place.
    /// </summary>
    public static void ExportMerged(string sourceDirectory, string loraFile, string outputDirectory)
    {
        if (Directory.Exists(outputDirectory) && Directory.EnumerateFileSystemEntries(outputDirectory).Any())
        {
            throw new ArgumentException($"--out: '{outputDirectory}' exists and is not empty");
        }
        var className = PipelineLoader.ClassName(sourceDirectory);
        if (className == PipelineLoader.StableDiffusion3)
        {
            var sd3 = StableDiffusion3Layout.Read(sourceDirectory);
            ExportTransformer(sd3.Root, sd3.Transformer, outputDirectory, () => SD3Transformer2DModel.FromPretrained(sd3.Transformer),
                (m, dir) => ((SD3Transformer2DModel)m).SavePretrained(dir), loraFile);
            return;
        }
        if (className == PipelineLoader.Flux)
        {
            var flux = FluxLayout.Read(sourceDirectory);
            ExportTransformer(flux.Root, flux.Transformer, outputDirectory, () => FluxTransformer2DModel.FromPretrained(flux.Transformer),
                (m, dir) => ((FluxTransformer2DModel)m).SavePretrained(dir), loraFile);
            return;
        }
        var layout = PipelineLayout.Read(sourceDirectory);
        AtomicFile.WriteFolder(outputDirectory, temp =>
        {
            CopyTree(layout.Root, temp, skip: Path.GetFullPath(layout.Unet));
            using var unet = UNet2DConditionModel.FromPretrained(layout.Unet);
            var lora = LoraAdapters.Load(unet, loraFile);
            lora.MergeIntoBase();
            unet.SavePretrained(Path.Combine(temp, "unet"));
        });
    }

    /// <summary>A transformer family's export: the folder copied without <c>transformer/</c>, which is written merged.</summary>
    private static void ExportTransformer(string root, string transformerDir, string outputDirectory, Func<TorchSharp.torch.nn.Module> load,
        Action<TorchSharp.torch.nn.Module, string> save, string loraFile)
    {
        AtomicFile.WriteFolder(outputDirectory, temp =>
        {
            CopyTree(root, temp, skip: Path.GetFullPath(transformerDir));
            using var transformer = load();
            var lora = LoraAdapters.Load(transformer, loraFile, "transformer");
            lora.MergeIntoBase();
            save(transformer, Path.Combine(temp, "transformer"));
        });
    }

    private static void CopyTree(string from, string to, string skip)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }
        foreach (var dir in Directory.GetDirectories(from))
        {
            if (Path.GetFullPath(dir) == skip) continue;
            CopyTree(dir, Path.Combine(to, Path.GetFileName(dir)), skip);
        }
    }
}
