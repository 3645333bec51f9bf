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
        if (PipelineLoader.ClassName(sourceDirectory) == PipelineLoader.StableDiffusion3)
        {
            var sd3 = StableDiffusion3Layout.Read(sourceDirectory);
            AtomicFile.WriteFolder(outputDirectory, temp =>
            {
                CopyTree(sd3.Root, temp, skip: Path.GetFullPath(sd3.Transformer));
                using var transformer = SD3Transformer2DModel.FromPretrained(sd3.Transformer);
                var lora = LoraAdapters.Load(transformer, loraFile, "transformer");
                lora.MergeIntoBase();
                transformer.SavePretrained(Path.Combine(temp, "transformer"));
            });
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
