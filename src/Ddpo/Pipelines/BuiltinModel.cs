using Ddpo.Models.Loading;

namespace Ddpo.Pipelines;

/// <summary>
/// The small text-to-image model shipped with ddpo (diffusers layout, pixel space), copied next to
/// the program as <c>models/builtin</c>. It draws the paper's prompts ("a cat", "a dog riding a
/// bike", ...) so that DDPO runs out of the box on a CPU.
/// </summary>
public static class BuiltinModel
{
    /// <summary>Name that selects the built-in model where a model folder is expected.</summary>
    public const string Name = "builtin";

    /// <summary>The folder of the built-in model beside the running program.</summary>
    public static string Directory
    {
        get
        {
            var dir = Path.Combine(AppContext.BaseDirectory, "models", "builtin");
            if (!System.IO.Directory.Exists(dir))
            {
                throw new ModelLoadException($"{dir}: the built-in model is missing from this build (it is copied from the repository's models/builtin folder)");
            }
            return dir;
        }
    }
}
