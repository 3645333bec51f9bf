using Ddpo.Base;
using Ddpo.Models.Loading;

namespace Ddpo.Models.Clip;

/// <summary>
/// transformers' <c>CLIPConfig</c> (a full <c>CLIPModel</c>: PickScore, openai/clip-vit-large-patch14): the two
/// tower configs (<c>text_config</c>, <c>vision_config</c>), the shared <c>projection_dim</c> and the initial
/// <c>logit_scale</c>.
/// </summary>
internal sealed class ClipModelConfig
{
    /// <summary>The text tower (<c>text_config</c>).</summary>
    public required ClipTextConfig Text { get; init; }

    /// <summary>The image tower (<c>vision_config</c>).</summary>
    public required ClipVisionConfig Vision { get; init; }

    /// <summary>Width of both projections (the outer <c>projection_dim</c>; transformers ignores the towers' own).</summary>
    public int ProjectionDim { get; init; } = 512;

    /// <summary><c>logit_scale_init_value</c> (log of the initial temperature; checkpoints overwrite it).</summary>
    public double LogitScaleInit { get; init; } = 2.6592;

    /// <summary>Reads a <c>CLIPModel</c> <c>config.json</c>; both tower configs must be present.</summary>
    public static ClipModelConfig FromJson(JsonConfig json)
    {
        foreach (var tower in new[] { "text_config", "vision_config" })
        {
            if (json.Root[tower] is not System.Text.Json.Nodes.JsonObject)
            {
                throw new ConfigException($"{json.Source}: field '{tower}' (an object) is missing: not a CLIPModel config (a single tower's config.json has no text_config/vision_config)");
            }
        }
        var config = new ClipModelConfig
        {
            Text = ClipTextConfig.FromJson(json),
            Vision = ClipVisionConfig.FromJson(json),
            ProjectionDim = json.GetInt("projection_dim", 512),
            LogitScaleInit = json.GetDouble("logit_scale_init_value", 2.6592),
        };
        ClipConfigChecks.Positive(json.Source, ("projection_dim", config.ProjectionDim));
        return config;
    }

    /// <summary>Reads a <c>config.json</c> file.</summary>
    public static ClipModelConfig Load(string path) => FromJson(JsonConfig.Load(path));
}
