using Ddpo.Models.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.Lora;

/// <summary>
/// The set of LoRA adapters attached to a UNet's attention projections (by default <c>to_q</c>, <c>to_k</c>,
/// <c>to_v</c>, <c>to_out.0</c>, as ddpo-pytorch / PEFT). Adapters are float32 and not part of the UNet's state
/// dict; they are saved in diffusers' <c>pytorch_lora_weights.safetensors</c> naming
/// (<c>unet.&lt;module&gt;.lora.down.weight</c> / <c>.lora.up.weight</c>; a transformer's as PEFT's
/// <c>transformer.&lt;module&gt;.lora_A.weight</c> / <c>.lora_B.weight</c>; scale folded into up).
/// </summary>
internal sealed class LoraAdapters : IDisposable
{
    /// <summary>The default target projections.</summary>
    public static readonly IReadOnlyList<string> DefaultTargets = ["to_q", "to_k", "to_v", "to_out.0"];

    private readonly List<(string Path, LoraLinear Layer, LoraAdapter Adapter)> _entries;
    private bool _detached;

    private LoraAdapters(nn.Module model, List<(string, LoraLinear, LoraAdapter)> entries, string component)
    {
        Model = model;
        _entries = entries;
        Component = component;
    }

    /// <summary>The pipeline component the adapters belong to (<c>unet</c>, <c>transformer</c>): the prefix of their file keys.</summary>
    public string Component { get; }

    /// <summary>
    /// The denoiser the adapters are attached to (a UNet, a transformer): any module whose <see cref="LoraLinear"/> layers they adapt.
    /// </summary>
    public nn.Module Model { get; }

    /// <summary>Module paths (diffusers names) of the adapted layers, in model order.</summary>
    public IReadOnlyList<string> ModulePaths => _entries.Select(e => e.Path).ToList();

    /// <summary>Number of adapted layers.</summary>
    public int Count => _entries.Count;

    /// <summary>The trainable parameters (down and up of every adapter), in model order. Rebuild optimizers after <see cref="To"/>.</summary>
    public IReadOnlyList<Parameter> Parameters => _entries.SelectMany(e => new[] { e.Adapter.Down, e.Adapter.Up }).ToList();

    /// <summary>The adapter of the layer at <paramref name="modulePath"/>.</summary>
    public LoraAdapter this[string modulePath] =>
        _entries.FirstOrDefault(e => e.Path == modulePath).Adapter ?? throw new KeyNotFoundException($"no LoRA adapter on '{modulePath}'");

    /// <summary>
    /// Attaches fresh adapters of rank <paramref name="rank"/> (scale <c>alpha / rank</c>) to every LoRA-capable
    /// projection whose path ends with one of <paramref name="targets"/> (default <see cref="DefaultTargets"/>).
    /// Down is drawn as <paramref name="init"/> says (default: N(0, 1/rank^2), as diffusers 0.17 and ddpo-pytorch),
    /// from <paramref name="gen"/>, up with zeros, so the UNet's output is unchanged until training moves the up weights.
    /// </summary>
    public static LoraAdapters Attach(nn.Module unet, int rank, double alpha,
        IEnumerable<string>? targets = null, Generator? gen = null, LoraInit init = LoraInit.Gaussian, string component = LoraKeys.Unet)
    {
        if (rank <= 0) throw new ArgumentOutOfRangeException(nameof(rank), rank, "LoRA rank must be positive");
        if (!(alpha > 0)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "LoRA alpha must be positive");
        var targetList = (targets ?? DefaultTargets).ToList();
        if (targetList.Count == 0) throw new ArgumentException("at least one LoRA target is needed", nameof(targets));
        var layers = FindLayers(unet)
            .Where(l => targetList.Any(t => l.Path == t || l.Path.EndsWith("." + t, StringComparison.Ordinal)))
            .ToList();
        if (layers.Count == 0)
        {
            throw new ArgumentException($"no {component} projection matches the LoRA targets [{string.Join(", ", targetList)}]", nameof(targets));
        }
        EnsureFree(layers);
        var entries = new List<(string, LoraLinear, LoraAdapter)>();
        double scale = alpha / rank;
        using (no_grad())
        {
            foreach (var (path, layer) in layers)
            {
                var device = layer.Weight.device;
                var down = DrawDown(rank, layer.InFeatures, init, gen).to(device);
                var up = zeros([layer.OutFeatures, rank], ScalarType.Float32, device);
                var adapter = new LoraAdapter(down, up, scale);
                layer.Adapter = adapter;
                entries.Add((path, layer, adapter));
            }
        }
        return new LoraAdapters(unet, entries, component);
    }

    /// <summary>A fresh down projection [rank, in_features], float32 on the CPU (drawn there so seeds reproduce across devices).</summary>
    internal static Tensor DrawDown(int rank, long inFeatures, LoraInit init, Generator? gen)
    {
        switch (init)
        {
            case LoraInit.Gaussian:
                return randn([rank, inFeatures], ScalarType.Float32, generator: gen).mul_(1.0 / rank);
            case LoraInit.KaimingUniform:
                double bound = 1.0 / Math.Sqrt(inFeatures);
                return rand([rank, inFeatures], ScalarType.Float32, generator: gen).mul_(2 * bound).sub_(bound);
            default:
                throw new ArgumentOutOfRangeException(nameof(init), init, "unknown LoRA initialisation");
        }
    }

    /// <summary>
    /// Reads a LoRA file (diffusers, PEFT or old attention-processor naming; see <see cref="LoraKeys"/>) and attaches
    /// its adapters to <paramref name="unet"/>. Scale is <c>alpha / rank</c> when the file stores alphas, else 1.
    /// Unknown keys, layers the UNet lacks and shape mismatches are a <see cref="ModelLoadException"/> naming key and file.
    /// </summary>
    public static LoraAdapters Load(nn.Module unet, string path, string component = LoraKeys.Unet)
    {
        var parsed = ReadFile(unet, path, component);
        try
        {
            var layers = FindLayers(unet).ToDictionary(l => l.Path, l => l.Layer);
            EnsureFree(parsed.Keys.Select(p => (p, layers[p])));
            var entries = new List<(string, LoraLinear, LoraAdapter)>();
            foreach (var (modulePath, layer) in layers)
            {
                if (!parsed.TryGetValue(modulePath, out var w)) continue;
                var device = layer.Weight.device;
                var adapter = new LoraAdapter(
                    w.Down.to(ScalarType.Float32, device, copy: true),
                    w.Up.to(ScalarType.Float32, device, copy: true),
                    w.Scale);
                layer.Adapter = adapter;
                entries.Add((modulePath, layer, adapter));
            }
            return new LoraAdapters(unet, entries, component);
        }
        finally
        {
            foreach (var w in parsed.Values) w.Dispose();
        }
    }

    /// <summary>
    /// Copies the values of a LoRA file into these adapters (which must cover exactly the file's layers with the same
    /// ranks). The effective update is preserved: up is rescaled from the file's scale to each adapter's scale.
    /// </summary>
    public void LoadWeights(string path)
    {
        ThrowIfDetached();
        var parsed = ReadFile(Model, path, Component);
        try
        {
            var ours = _entries.Select(e => e.Path).ToHashSet();
            var missing = ours.Where(p => !parsed.ContainsKey(p)).ToList();
            var extra = parsed.Keys.Where(p => !ours.Contains(p)).ToList();
            if (missing.Count > 0 || extra.Count > 0)
            {
                throw new ModelLoadException($"{path}: LoRA file does not match the attached adapters"
                    + (missing.Count > 0 ? $"; missing layers: {string.Join(", ", missing.Take(8))}{(missing.Count > 8 ? ", ..." : "")}" : "")
                    + (extra.Count > 0 ? $"; layers without an adapter: {string.Join(", ", extra.Take(8))}{(extra.Count > 8 ? ", ..." : "")}" : ""));
            }
            foreach (var (modulePath, _, adapter) in _entries)
            {
                var w = parsed[modulePath];
                if (w.Down.shape[0] != adapter.Rank)
                {
                    throw new ModelLoadException($"{path}: '{w.DownKey}' has rank {w.Down.shape[0]} but the attached adapter has rank {adapter.Rank}");
                }
            }
            using (no_grad())
            {
                foreach (var (modulePath, _, adapter) in _entries)
                {
                    var w = parsed[modulePath];
                    adapter.Down.copy_(w.Down);
                    adapter.Up.copy_(w.Up);
                    if (w.Scale != adapter.Scale) adapter.Up.mul_(w.Scale / adapter.Scale);
                }
            }
        }
        finally
        {
            foreach (var w in parsed.Values) w.Dispose();
        }
    }

    /// <summary>
    /// The adapters as a state dict in diffusers naming (<see cref="LoraKeys.DiffusersKey"/>: <c>unet.&lt;module&gt;.lora.down.weight</c> and
    /// <c>.lora.up.weight</c>), float32 CPU copies owned by the caller, with the scale folded into up
    /// (so a reader without alphas, using scale 1, reproduces the same update).
    /// </summary>
    public IDictionary<string, Tensor> StateDict()
    {
        ThrowIfDetached();
        var result = new Dictionary<string, Tensor>();
        using (no_grad())
        {
            foreach (var (modulePath, _, adapter) in _entries)
            {
                var down = adapter.Down.detach().to(ScalarType.Float32, CPU, copy: true);
                var up = adapter.Up.detach().to(ScalarType.Float32, CPU, copy: true);
                if (adapter.Scale != 1.0) up.mul_(adapter.Scale);
                result[LoraKeys.DiffusersKey(modulePath, LoraTensorKind.Down, Component)] = down.DetachFromDisposeScope();
                result[LoraKeys.DiffusersKey(modulePath, LoraTensorKind.Up, Component)] = up.DetachFromDisposeScope();
            }
        }
        return result;
    }

    /// <summary>Saves <see cref="StateDict"/> as a safetensors file, atomically.</summary>
    public void Save(string path)
    {
        var state = StateDict();
        try
        {
            SafetensorsFile.SaveAtomic(path, state);
        }
        finally
        {
            StateDictLoader.DisposeAll(state);
        }
    }

    /// <summary>Adds each adapter's update into its base weight (<c>W += scale * up @ down</c>, in W's dtype), then detaches.</summary>
    public void MergeIntoBase()
    {
        ThrowIfDetached();
        using (no_grad())
        {
            foreach (var (_, layer, adapter) in _entries)
            {
                using var delta = adapter.DenseDelta();
                using var cast = delta.to(layer.Weight.dtype, layer.Weight.device);
                layer.Weight.add_(cast);
            }
        }
        Detach();
    }

    /// <summary>Removes the adapters from the UNet and releases them; the UNet computes its base output again.</summary>
    public void Detach()
    {
        if (_detached) return;
        foreach (var (_, layer, adapter) in _entries)
        {
            if (ReferenceEquals(layer.Adapter, adapter)) layer.Adapter = null;
            adapter.Dispose();
        }
        _entries.Clear();
        _detached = true;
    }

    /// <summary>Moves the adapters to <paramref name="device"/> (new parameter objects: rebuild optimizers afterwards).</summary>
    public void To(Device device)
    {
        ThrowIfDetached();
        foreach (var (_, _, adapter) in _entries) adapter.MoveTo(device);
    }

    /// <summary>Same as <see cref="Detach"/>.</summary>
    public void Dispose() => Detach();

    /// <summary>
    /// Switches every adapter off until the result is disposed, which restores each one's previous state (scopes
    /// nest): inside, the UNet computes the base model's output, bit for bit as without adapters. Not thread-safe:
    /// nothing else may run the UNet meanwhile.
    /// </summary>
    public IDisposable Disable()
    {
        ThrowIfDetached();
        var previous = _entries.Select(e => e.Adapter.Enabled).ToArray();
        foreach (var e in _entries) e.Adapter.Enabled = false;
        return new EnabledRestorer(_entries.Select(e => e.Adapter).ToArray(), previous);
    }

    private sealed class EnabledRestorer(LoraAdapter[] adapters, bool[] previous) : IDisposable
    {
        private bool _done;

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            for (int i = 0; i < adapters.Length; i++) adapters[i].Enabled = previous[i];
        }
    }

    private void ThrowIfDetached()
    {
        if (_detached) throw new InvalidOperationException("these LoRA adapters were detached");
    }

    private static IEnumerable<(string Path, LoraLinear Layer)> FindLayers(nn.Module unet) =>
        unet.named_modules().Where(m => m.module is LoraLinear).Select(m => (m.name, (LoraLinear)m.module));

    private static void EnsureFree(IEnumerable<(string Path, LoraLinear Layer)> layers)
    {
        var taken = layers.Where(l => l.Layer.Adapter is not null).Select(l => l.Path).ToList();
        if (taken.Count > 0)
        {
            throw new InvalidOperationException($"LoRA adapters are already attached to {taken.Count} layers (e.g. '{taken[0]}'); detach them first");
        }
    }

    private sealed class FileAdapter : IDisposable
    {
        public required Tensor Down { get; init; }
        public required Tensor Up { get; init; }
        public required string DownKey { get; init; }
        public double Scale { get; init; } = 1.0;

        public void Dispose()
        {
            Down.Dispose();
            Up.Dispose();
        }
    }

    /// <summary>Reads and validates a LoRA file against <paramref name="unet"/>: module path -> weights.</summary>
    private static Dictionary<string, FileAdapter> ReadFile(nn.Module unet, string path, string component)
    {
        var tensors = SafetensorsFile.Load(path);
        try
        {
            var layers = FindLayers(unet).ToDictionary(l => l.Path, l => l.Layer);
            var groups = new Dictionary<string, Dictionary<LoraTensorKind, (string Key, Tensor Value)>>();
            foreach (var (key, value) in tensors)
            {
                if (!LoraKeys.TryParse(key, out var modulePath, out var kind, component))
                {
                    throw new ModelLoadException($"{path}: tensor '{key}' is not a LoRA weight this loader understands " +
                        "(expected <module>.lora.down.weight / .lora.up.weight, .lora_A.weight / .lora_B.weight or .alpha)");
                }
                if (!layers.ContainsKey(modulePath))
                {
                    throw new ModelLoadException($"{path}: tensor '{key}' targets '{modulePath}', which is not a LoRA-capable layer of this {component}");
                }
                if (!groups.TryGetValue(modulePath, out var g)) groups[modulePath] = g = [];
                g[kind] = (key, value);
            }
            if (groups.Count == 0) throw new ModelLoadException($"{path}: no LoRA weights in the file");
            var result = new Dictionary<string, FileAdapter>();
            foreach (var (modulePath, g) in groups)
            {
                var layer = layers[modulePath];
                if (!g.TryGetValue(LoraTensorKind.Down, out var down))
                {
                    throw new ModelLoadException($"{path}: layer '{modulePath}' has no down weight (found {string.Join(", ", g.Values.Select(v => $"'{v.Key}'"))})");
                }
                if (!g.TryGetValue(LoraTensorKind.Up, out var up))
                {
                    throw new ModelLoadException($"{path}: layer '{modulePath}' has a down weight ('{down.Key}') but no up weight");
                }
                if (down.Value.dim() != 2 || down.Value.shape[1] != layer.InFeatures)
                {
                    throw new ModelLoadException($"{path}: tensor '{down.Key}' has shape [{string.Join(", ", down.Value.shape)}], expected [rank, {layer.InFeatures}]");
                }
                long rank = down.Value.shape[0];
                if (up.Value.dim() != 2 || up.Value.shape[0] != layer.OutFeatures || up.Value.shape[1] != rank)
                {
                    throw new ModelLoadException($"{path}: tensor '{up.Key}' has shape [{string.Join(", ", up.Value.shape)}], expected [{layer.OutFeatures}, {rank}]");
                }
                double scale = 1.0;
                if (g.TryGetValue(LoraTensorKind.Alpha, out var alpha))
                {
                    if (alpha.Value.numel() != 1)
                    {
                        throw new ModelLoadException($"{path}: tensor '{alpha.Key}' should be a scalar alpha, has shape [{string.Join(", ", alpha.Value.shape)}]");
                    }
                    scale = alpha.Value.to(ScalarType.Float64).item<double>() / rank;
                }
                result[modulePath] = new FileAdapter
                {
                    Down = down.Value.to(ScalarType.Float32, copy: true).DetachFromDisposeScope(),
                    Up = up.Value.to(ScalarType.Float32, copy: true).DetachFromDisposeScope(),
                    DownKey = down.Key,
                    Scale = scale,
                };
            }
            return result;
        }
        finally
        {
            StateDictLoader.DisposeAll(tensors);
        }
    }
}
