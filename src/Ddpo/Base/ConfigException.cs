// In the base namespace, below every other: every layer (config, model configs, schedulers, prompts, rewards) throws
// it, and it depends on nothing of the project.
namespace Ddpo.Base;

/// <summary>
/// The one configuration error of the library: a run setting (a key of <c>Ddpo.Config.DdpoConfig</c>, a preset, a config
/// file) or a model's configuration file (<c>config.json</c>, <c>scheduler_config.json</c>, ...) is missing, malformed or
/// unsupported; the message names the file or key, where it was set, and what was expected.
/// </summary>
public sealed class ConfigException : Exception
{
    /// <summary>Creates the exception with a message naming the file and field at fault.</summary>
    public ConfigException(string message, Exception? inner = null) : base(message, inner) { }
}
