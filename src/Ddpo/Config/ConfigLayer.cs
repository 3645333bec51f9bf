using Ddpo.Base;

namespace Ddpo.Config;

/// <summary>
/// Applies one layer of settings (a file's tree, or all <c>--set</c> overrides together) to a config,
/// recording where each key came from, then keeps the paired keys consistent:
/// a layer that changes <c>prompt_fn</c> without touching <c>prompt_fn_kwargs</c> clears the kwargs,
/// a layer that fills <c>rewards</c> without naming <c>reward_fn</c> sets it to <c>"weighted"</c>,
/// a layer that names another <c>reward_fn</c> without touching <c>rewards</c> clears the weights,
/// and a layer that sets a per-process count (<c>sample.num_batches_per_epoch</c>,
/// <c>train.gradient_accumulation_steps</c>) without its total turns the total off (0): the later layer wins.
/// </summary>
internal sealed class ConfigLayer
{
    private readonly DdpoConfig _config;
    private readonly string _origin;
    private readonly HashSet<string> _touched = [];
    private readonly string _promptFnBefore;

    public ConfigLayer(DdpoConfig config, string origin)
    {
        _config = config;
        _origin = origin;
        _promptFnBefore = config.PromptFn;
    }

    /// <summary>Applies a parsed file (or preset) tree.</summary>
    public void ApplyTree(IReadOnlyDictionary<string, object> tree, string prefix = "")
    {
        foreach (var (name, value) in tree)
        {
            var path = prefix.Length == 0 ? name : prefix + "." + name;
            var key = ConfigSchema.Find(path);
            if (key is not null)
            {
                Set(key, value, path);
            }
            else if (ConfigSchema.IsSection(path))
            {
                if (value is not Dictionary<string, object> section)
                {
                    throw Error(path, $"expected a table [{path}], got {ConfigValues.Describe(value)}");
                }
                ApplyTree(section, path);
            }
            else
            {
                throw Unknown(path, prefix);
            }
        }
    }

    /// <summary>Applies one <c>KEY=VALUE</c> override; the value is read as a TOML value (a bare word is a string).</summary>
    public void ApplyOverride(string assignment)
    {
        int eq = assignment.IndexOf('=');
        if (eq <= 0)
        {
            throw new ConfigException($"--set '{assignment}': expected KEY=VALUE, e.g. --set train.learning_rate=1e-4");
        }
        var path = assignment[..eq].Trim();
        var raw = assignment[(eq + 1)..].Trim();
        var origin = $"--set {path}";
        bool parsed = ConfigValues.TryParseTomlValue(raw, out var value);

        var key = ConfigSchema.Find(path);
        if (key is not null)
        {
            if (key.Kind == ConfigValueKind.String && !(parsed && value is string))
            {
                value = raw; // bare words are strings: --set prompt_fn=simple_animals
            }
            else if (!parsed)
            {
                throw new ConfigException($"{origin}: '{raw}' is not a valid value ({ExpectedFor(key.Kind)})");
            }
            Set(key, value, path, origin);
            return;
        }

        foreach (var table in new[] { ConfigSchema.PromptFnKwargs, ConfigSchema.Rewards })
        {
            if (path.StartsWith(table + ".", StringComparison.Ordinal) && path.Length > table.Length + 1)
            {
                var entry = path[(table.Length + 1)..];
                var current = (Dictionary<string, object>)ConfigValues.Convert(ConfigSchema.Find(table)!.Get(_config), ConfigValueKind.Table);
                current[entry] = parsed ? value : raw;
                Set(ConfigSchema.Find(table)!, current, table, origin);
                return;
            }
        }

        if (ConfigSchema.IsSection(path) && parsed)
        {
            if (value is not Dictionary<string, object> section)
            {
                throw new ConfigException($"{origin}: expected an inline table for section [{path}], got {ConfigValues.Describe(value)}");
            }
            ApplyTree(section, path);
            return;
        }
        int dot = path.LastIndexOf('.');
        throw Unknown(path, dot < 0 ? "" : path[..dot], origin);
    }

    /// <summary>Keeps <c>prompt_fn</c>/<c>prompt_fn_kwargs</c> and <c>reward_fn</c>/<c>rewards</c> consistent after the layer.</summary>
    public void Finish()
    {
        if (_config.PromptFn != _promptFnBefore && !_touched.Contains(ConfigSchema.PromptFnKwargs))
        {
            _config.PromptFnKwargs = [];
            _config.SetOrigin(ConfigSchema.PromptFnKwargs, _origin);
        }
        bool rewardFnSet = _touched.Contains("reward_fn");
        bool rewardsSet = _touched.Contains(ConfigSchema.Rewards);
        if (rewardsSet && !rewardFnSet && _config.Rewards.Count > 0)
        {
            _config.RewardFn = DdpoConfig.WeightedRewardName;
            _config.SetOrigin("reward_fn", _origin);
        }
        if (rewardFnSet && !rewardsSet && _config.RewardFn != DdpoConfig.WeightedRewardName)
        {
            _config.Rewards = [];
            _config.SetOrigin(ConfigSchema.Rewards, _origin);
        }
        foreach (var (total, perProcess) in SampleCounts.TotalKeys)
        {
            FinishTotal(ConfigSchema.Find(total)!, perProcess);
        }
    }

    // A total and the per-process count it decides: the one set in the later layer wins; both in one layer is ambiguous.
    private void FinishTotal(ConfigKey total, string perProcess)
    {
        if (!_touched.Contains(perProcess) || (int)total.Get(_config) == 0)
        {
            return;
        }
        if (_touched.Contains(total.Path))
        {
            throw new ConfigException(
                $"{_origin}: set {total.Path} (over all processes; {perProcess} is then derived) or {perProcess} (per process), not both");
        }
        total.Set(_config, 0);
        _config.SetOrigin(total.Path, _origin);
    }

    private void Set(ConfigKey key, object value, string path, string? origin = null)
    {
        origin ??= _origin;
        try
        {
            key.Set(_config, ConfigValues.Convert(value, key.Kind));
        }
        catch (ConfigValueException e)
        {
            throw new ConfigException($"{origin}: {path}: {e.Message}");
        }
        _touched.Add(path);
        _config.SetOrigin(path, origin);
    }

    private ConfigException Error(string path, string message) => new($"{_origin}: {path}: {message}");

    private ConfigException Unknown(string path, string section, string? origin = null)
    {
        while (section.Length > 0 && !ConfigSchema.IsSection(section))
        {
            int dot = section.LastIndexOf('.');
            section = dot < 0 ? "" : section[..dot]; // an unknown section: list the nearest known one (or the top level)
        }
        var where = section.Length == 0 ? "at the top level" : $"in [{section}]";
        var known = $" (known keys {where}: {string.Join(", ", ConfigSchema.KeysUnder(section))})";
        return new ConfigException($"{origin ?? _origin}: unknown key '{path}'{known}");
    }

    private static string ExpectedFor(ConfigValueKind kind) => kind switch
    {
        ConfigValueKind.Integer => "expected an integer",
        ConfigValueKind.Float => "expected a number",
        ConfigValueKind.Boolean => "expected true or false",
        ConfigValueKind.Table => "expected an inline table such as { a = 1 }",
        ConfigValueKind.IntegerList => "expected an array of integers such as [0, 4]",
        _ => "expected a string",
    };
}
