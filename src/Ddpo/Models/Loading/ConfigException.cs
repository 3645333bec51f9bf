namespace Ddpo.Models.Loading;

/// <summary>A configuration file or value is missing, malformed or unsupported; the message names the file and field.</summary>
public sealed class ConfigException : Exception
{
    /// <summary>Creates the exception with a message naming the file and field at fault.</summary>
    public ConfigException(string message, Exception? inner = null) : base(message, inner) { }
}
