using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpo.Base;
using Ddpo.Config;
using Ddpo.Prompts;
using Ddpo.Rewards.Remote;
using Spectre.Console;

namespace Ddpo.Cli.Commands;

/// <summary>
/// <c>ddpo score</c>: scores image files (PNG or JPEG) with any registered reward, one prompt per image or one for all,
/// and prints each image's reward and details (each component of a weighted reward), as a table or one JSON document.
/// The scoring is <see cref="RewardScoring"/>; settings come from <c>--config</c> and <c>--set</c> as in a run.
/// </summary>
internal static class ScoreCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var reward = new Option<string>("--reward") { Description = "the reward: a registered name, or weighted (with --set rewards.NAME=WEIGHT)", Required = true };
        var images = new Option<string[]>("--image") { Description = "an image file, PNG or JPEG (repeatable)", Required = true };
        var prompts = new Option<string[]>("--prompt") { Description = "the prompt of each image, or one for all (repeatable)", Required = true };
        var metadata = new Option<string[]>("--metadata") { Description = "a JSON object of prompt metadata (e.g. GenEval's tag and include), per image or one for all (repeatable)" };
        var config = new Option<string?>("--config") { Description = "config file (TOML or JSON) with the reward settings" };
        var set = new Option<string[]>("--set") { Description = "override a key, e.g. --set reward.ocr.base_url=http://127.0.0.1:8091 (repeatable)" };
        var json = new Option<bool>("--json") { Description = "print one JSON document instead of a table" };
        var command = new Command("score", "Score image files with a reward (any registered reward, or a weighted sum)")
            { reward, images, prompts, metadata, config, set, json };
        command.SetAction(parse =>
        {
            var cfg = DdpoConfig.Load(parse.GetValue(config), null, parse.GetValue(set) ?? []);
            var meta = (parse.GetValue(metadata) ?? []).Select(ParseMetadata).ToArray();
            var name = parse.GetValue(reward)!;
            bool asJson = parse.GetValue(json);
            var log = new List<string>();
            IReadOnlyList<ImageFileScore> scores;
            try
            {
                scores = RewardScoring.ScoreFiles(cfg, name, parse.GetValue(images)!, parse.GetValue(prompts)!, meta,
                    m => { lock (log) log.Add(m); if (!asJson) Console.Error.WriteLine(m); }, CancellationToken.None);
            }
            catch (RewardServerException e)
            {
                AnsiConsole.Console.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return CliApp.RewardFailed;
            }
            if (asJson) Console.Out.WriteLine(ToJson(name, scores, log).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else AnsiConsole.Write(ToTable(scores));
            return 0;
        });
        return command;
    }

    /// <summary>One <c>--metadata</c> value: a JSON object, each field kept as JSON (as a <c>.jsonl</c> prompt record's).</summary>
    internal static IReadOnlyDictionary<string, string> ParseMetadata(string text)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            throw new ConfigException($"--metadata: not valid JSON ({e.Message}): {text}");
        }
        if (node is not JsonObject o) throw new ConfigException($"--metadata: expected a JSON object, got {text}");
        var metadata = new RecordMetadata();
        foreach (var (key, value) in o) metadata.Add(key, value);
        return metadata;
    }

    /// <summary>The JSON document of <c>--json</c>: NaN (no reward) is <c>null</c>.</summary>
    internal static JsonObject ToJson(string reward, IReadOnlyList<ImageFileScore> scores, IReadOnlyList<string> log)
    {
        static JsonNode? Number(float v) => float.IsFinite(v) ? JsonValue.Create((double)v) : null;
        var list = new JsonArray();
        foreach (var s in scores)
        {
            var details = new JsonObject();
            foreach (var (key, value) in s.Details.OrderBy(d => d.Key, StringComparer.Ordinal)) details[key] = Number(value);
            list.Add(new JsonObject { ["image"] = s.File, ["prompt"] = s.Prompt, ["reward"] = Number(s.Reward), ["details"] = details });
        }
        var finite = scores.Select(s => s.Reward).Where(float.IsFinite).ToArray();
        return new JsonObject
        {
            ["reward_fn"] = reward,
            ["images"] = list,
            ["mean"] = finite.Length == 0 ? null : JsonValue.Create(finite.Average(v => (double)v)),
            ["messages"] = new JsonArray(log.Select(m => (JsonNode?)JsonValue.Create(m)).ToArray()),
        };
    }

    private static Table ToTable(IReadOnlyList<ImageFileScore> scores)
    {
        var keys = scores.SelectMany(s => s.Details.Keys).Distinct().Order(StringComparer.Ordinal).ToArray();
        var table = new Table().AddColumns(["image", "prompt", "reward", .. keys]);
        static string Fmt(float v) => float.IsFinite(v) ? v.ToString("G6", System.Globalization.CultureInfo.InvariantCulture) : "NaN";
        foreach (var s in scores)
        {
            table.AddRow([Markup.Escape(s.File), Markup.Escape(s.Prompt), Fmt(s.Reward),
                .. keys.Select(k => s.Details.TryGetValue(k, out var v) ? Fmt(v) : "")]);
        }
        return table;
    }
}
