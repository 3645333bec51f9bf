namespace Ddpo.Models.Loading;

/// <summary>
/// A model folder, weight file or state dict could not be loaded. The message names the file or
/// tensor at fault and what was expected, so the user can fix the input.
/// </summary>
public sealed class ModelLoadException : Exception
{
    /// <summary>Creates the exception with a message naming the file or field at fault.</summary>
    public ModelLoadException(string message, Exception? inner = null) : base(message, inner) { }
}
