using Ddpo.Models.Blocks;
using Ddpo.Models.Loading;
using Ddpo.Models.Unet;
using Ddpo.Models.Vae;
using Ddpo.Pipelines;
using Ddpo.Schedulers;
using Ddpo.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ddpo.Diagnostics;

/// <summary>
/// Float32 gradients against float64 ones of the same computation on the same inputs, for every layer type training
/// goes through (convolutions 3x3 / 1x1 / stride 2 at batch 2, norms, attention, linear, activations, upsampling), a
/// whole tiny UNet and VAE decoder, and the DDPO loss through a DDIM step. Float64 never reaches oneDNN (libtorch runs
/// it by im2col + BLAS), so it is the reference even where oneDNN's float32 kernels are wrong. Each float32 case runs
/// several times: a kernel that reads memory it never wrote gives different results from run to run.
/// </summary>
internal sealed class GradientCheck : IDisposable
{
    /// <summary>The largest error allowed: max |g32 - g64| over max |g64|, per gradient.</summary>
    public const double Tolerance = 1e-4;

    /// <summary>
    /// Tests only: changes each float32 gradient of the named case, as a wrong kernel would (the check must then
    /// fail). Null in every real run.
    /// </summary>
    internal static (string Case, Func<Tensor, Tensor> Change)? FaultForTests { get; set; }

    private readonly Device _device;
    private readonly List<(string Name, Func<ScalarType, Tensor[]> Run)> _cases = [];
    private readonly List<IDisposable> _owned = [];

    /// <summary>The cases' names, in order.</summary>
    public IReadOnlyList<string> CaseNames => _cases.Select(c => c.Name).ToList();

    /// <summary>Builds the cases on <paramref name="device"/> (random inputs and weights, fixed seeds).</summary>
    public GradientCheck(Device? device = null, bool includeModels = true)
    {
        _device = device ?? CPU;
        AddConvolution("conv 3x3, batch 2", [2, 4, 16, 16], 8, kernel: 3, stride: 1);
        AddConvolution("conv 3x3, batch 4", [4, 8, 8, 8], 8, kernel: 3, stride: 1);
        AddConvolution("conv 3x3, 32 channels", [2, 32, 16, 16], 32, kernel: 3, stride: 1);
        AddConvolution("conv 1x1", [2, 32, 8, 8], 64, kernel: 1, stride: 1);
        AddConvolution("conv 3x3, stride 2", [2, 32, 16, 16], 32, kernel: 3, stride: 2);
        // Output channels that are not a multiple of 8 (a UNet's conv_out, a VAE decoder's): oneDNN's backward-data
        // was wrong there on Zen 5, at AVX2 too; the models' convolutions pad them (SafeConv), and so do these.
        AddConvolution("conv 3x3, 4 output channels", [2, 32, 8, 8], 4, kernel: 3, stride: 1);
        AddConvolution("conv 3x3, 3 output channels", [2, 8, 16, 16], 3, kernel: 3, stride: 1);
        Add("group norm", 10, (d, g) =>
        {
            var (x, w, b) = (Input(g, d, 2, 32, 8, 8), Input(g, d, 32), Input(g, d, 32));
            return (F.group_norm(x, 8, w, b, 1e-5), [x, w, b]);
        });
        Add("layer norm", 11, (d, g) =>
        {
            var (x, w, b) = (Input(g, d, 2, 16, 32), Input(g, d, 32), Input(g, d, 32));
            return (F.layer_norm(x, [32], w, b, 1e-5), [x, w, b]);
        });
        Add("linear", 12, (d, g) =>
        {
            var (x, w, b) = (Input(g, d, 2, 16, 32), Input(g, d, 48, 32), Input(g, d, 48));
            return (F.linear(x, w, b), [x, w, b]);
        });
        Add("attention (self)", 13, (d, g) =>
        {
            var (q, k, v) = (Input(g, d, 2, 4, 64, 8), Input(g, d, 2, 4, 64, 8), Input(g, d, 2, 4, 64, 8));
            return (F.scaled_dot_product_attention(q, k, v), [q, k, v]);
        });
        Add("attention (cross)", 14, (d, g) =>
        {
            var (q, k, v) = (Input(g, d, 2, 4, 64, 8), Input(g, d, 2, 4, 7, 8), Input(g, d, 2, 4, 7, 8));
            return (F.scaled_dot_product_attention(q, k, v), [q, k, v]);
        });
        Add("silu, gelu", 15, (d, g) =>
        {
            var x = Input(g, d, 2, 8, 16, 16);
            return (F.silu(x) + F.gelu(x * 0.5), [x]);
        });
        Add("nearest upsample + conv", 16, (d, g) =>
        {
            var (x, w) = (Input(g, d, 2, 16, 8, 8), Input(g, d, 16, 16, 3, 3));
            return (F.conv2d(F.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest), w, padding: [1, 1]), [x, w]);
        });
        if (includeModels) AddModels();
    }

    /// <summary>
    /// Runs every case (or those <paramref name="only"/> accepts): the float64 reference once, the float32 computation
    /// <paramref name="repetitions"/> times. <paramref name="change"/> (tests) alters each float32 gradient first.
    /// </summary>
    public GradientCheckReport Run(int repetitions = 3, Func<string, bool>? only = null, Func<Tensor, Tensor>? change = null)
    {
        if (repetitions < 1) throw new ArgumentOutOfRangeException(nameof(repetitions), repetitions, "at least 1 repetition");
        var rows = new List<GradientCheckRow>();
        foreach (var (name, run) in _cases.Where(c => only?.Invoke(c.Name) ?? true))
        {
            using var scope = NewDisposeScope();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var reference = run(ScalarType.Float64);
            double worst = 0;
            bool repeatable = true, finite = true;
            int wrongRuns = 0;
            Tensor[]? first = null;
            for (int r = 0; r < repetitions; r++)
            {
                var grads = run(ScalarType.Float32);
                if (change is not null) grads = grads.Select(change).ToArray();
                if (FaultForTests is { } fault && fault.Case == name) grads = grads.Select(fault.Change).ToArray();
                double error = 0;
                for (int i = 0; i < grads.Length; i++)
                {
                    var c = TensorComparison.Of(reference[i], grads[i], what: name);
                    error = Math.Max(error, double.IsNaN(c.MaxAbsError) ? double.PositiveInfinity : c.RelativeToScale);
                    finite &= grads[i].isfinite().all().item<bool>();
                }
                if (!(error <= Tolerance)) wrongRuns++;
                worst = Math.Max(worst, error);
                if (first is null) first = grads;
                else repeatable &= first.Zip(grads).All(p => p.First.equal(p.Second).all().item<bool>());
            }
            rows.Add(new GradientCheckRow(name, worst, wrongRuns, repetitions, repeatable, finite, clock.Elapsed.TotalSeconds));
        }
        return new GradientCheckReport(rows, Tolerance);
    }

    private void AddConvolution(string name, long[] input, long outChannels, long kernel, long stride) =>
        Add(name, 1 + _cases.Count, (d, g) =>
        {
            var x = Input(g, d, input);
            var w = Input(g, d, outChannels, input[1], kernel, kernel);
            var b = Input(g, d, outChannels);
            var y = SafeConv.Conv2d(x, w, b, stride, kernel / 2);
            return (y, [x, w, b]);
        });

    /// <summary>
    /// A case from a forward function of leaf inputs: the loss is sum(out * r) for a fixed random r, and the case's
    /// gradients are the inputs' (float64 on the CPU).
    /// </summary>
    private void Add(string name, long seed, Func<ScalarType, Generator, (Tensor Output, Tensor[] Inputs)> forward) =>
        _cases.Add((name, dtype =>
        {
            var generator = new Generator((ulong)seed);
            var (output, inputs) = forward(dtype, generator);
            return Gradients(output, inputs, generator);
        }));

    private Tensor[] Gradients(Tensor output, IList<Tensor> leaves, Generator generator) =>
        WeightedGradients(output, leaves, generator).Select(t => t.detach().cpu().to(ScalarType.Float64)).ToArray();

    // The gradients of sum(output * r), r standard normal from the case's generator (the same in both precisions).
    private IList<Tensor> WeightedGradients(Tensor output, IList<Tensor> leaves, Generator generator)
    {
        var weights = randn(output.shape, dtype: ScalarType.Float64, generator: generator).to(output.dtype, _device);
        return Grad((output * weights).sum(), leaves);
    }

    // Drawn in float64 on the CPU, then cast: both precisions see the same values (up to float32 rounding).
    private Tensor Input(Generator generator, ScalarType dtype, params long[] shape) =>
        randn(shape, dtype: ScalarType.Float64, generator: generator).to(dtype, _device).requires_grad_(true);

    private void AddModels()
    {
        var options = new TinyPipelineOptions();
        var unetConfig = TinyPipelineWriter.UnetConfig(options);
        var unets = Pair(() => new UNet2DConditionModel(unetConfig), seed: 0);
        var vaes = Pair(() => new AutoencoderKL(TinyPipelineWriter.VaeConfig(options)!), seed: 1);
        var scheduler = new DdimScheduler(DdimSchedulerConfig.StableDiffusion());
        scheduler.SetTimesteps(10);
        _owned.Add(scheduler);
        long text = options.TextHiddenSize;
        // Half the model's resolution: every layer still runs (8 = 2 x 2 x 2), in a quarter of the time.
        long size = options.SampleSize / 2;

        Tensor[] UnetInputs(ScalarType dtype, Generator g) =>
            [Input(g, dtype, 2, unetConfig.InChannels, size, size), Input(g, dtype, 2, 7, text)];

        _cases.Add(("tiny UNet (input and all weights)", dtype =>
        {
            var g = new Generator(20);
            var unet = unets[dtype];
            var inputs = UnetInputs(dtype, g);
            var output = unet.call(inputs[0], tensor(new long[] { 500, 300 }, device: _device), inputs[1]);
            return ModelGradients(output, inputs, unet.parameters().ToList(), g);
        }));
        _cases.Add(("tiny VAE decoder", dtype =>
        {
            var g = new Generator(21);
            var vae = vaes[dtype];
            var z = Input(g, dtype, 2, 4, size / 2, size / 2);
            return ModelGradients(vae.Decode(z), [z], vae.parameters().ToList(), g);
        }));
        _cases.Add(("DDPO loss (UNet, DDIM step log-prob, clipped ratio)", dtype =>
        {
            var g = new Generator(22);
            var unet = unets[dtype];
            var inputs = UnetInputs(dtype, g);
            var t = tensor(new long[] { 501, 501 }, device: _device);
            var noise = randn(inputs[0].shape, dtype: ScalarType.Float64, generator: g).to(dtype, _device);
            var output = unet.call(inputs[0], t, inputs[1]);
            // The recorded next sample (float64, so that both precisions score the same action).
            Tensor next;
            using (no_grad())
            {
                var step64 = scheduler.Step(output.detach().to(ScalarType.Float64), t, inputs[0].detach().to(ScalarType.Float64), 1.0,
                    noise: noise.to(ScalarType.Float64));
                next = step64.PrevSample;
            }
            var step = scheduler.Step(output, t, inputs[0], 1.0, prevSample: next);
            var advantages = tensor(new[] { 1.0, -0.5 }, dtype: dtype, device: _device);
            var old = step.LogProb.detach() - 1e-3;
            var (loss, _, _) = PolicyLoss.DdpoIs(step.LogProb, old, advantages, clipRange: 1e-4, advClipMax: 5);
            var leaves = new List<Tensor>(inputs);
            leaves.AddRange(unet.parameters());
            var grads = Grad(loss, leaves);
            return Flattened(grads, inputs.Length);
        }));
    }

    // The model's own weights in both precisions, drawn once from one seed.
    private Dictionary<ScalarType, T> Pair<T>(Func<T> create, long seed) where T : nn.Module
    {
        var pair = new Dictionary<ScalarType, T>();
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.Float64 })
        {
            var module = create();
            SeededInitializer.Apply(module, seed);
            module.to(dtype).to(_device);
            _owned.Add(module);
            pair[dtype] = module;
        }
        return pair;
    }

    private Tensor[] ModelGradients(Tensor output, Tensor[] inputs, List<TorchSharp.Modules.Parameter> parameters, Generator generator) =>
        Flattened(WeightedGradients(output, [.. inputs, .. parameters], generator), inputs.Length);

    // Unused leaves (a layer the loss does not reach) get zeros: without allow_unused libtorch aborts the process.
    private static IList<Tensor> Grad(Tensor loss, IList<Tensor> leaves)
    {
        var grads = torch.autograd.grad([loss], leaves, allow_unused: true);
        return grads.Select((g, i) => g is null || g.IsInvalid ? zeros_like(leaves[i]) : g).ToList();
    }

    // Each input's gradient on its own, all weight gradients as one vector (compared against its largest element).
    private static Tensor[] Flattened(IList<Tensor> grads, int inputs)
    {
        var result = grads.Take(inputs).Select(t => t.detach().cpu().to(ScalarType.Float64)).ToList();
        result.Add(cat(grads.Skip(inputs).Select(t => t.detach().flatten().cpu().to(ScalarType.Float64)).ToList(), 0));
        return result.ToArray();
    }

    /// <summary>Releases the models.</summary>
    public void Dispose()
    {
        foreach (var d in _owned) d.Dispose();
        _owned.Clear();
    }
}

/// <summary>One case of a <see cref="GradientCheck"/>.</summary>
/// <param name="Name">What was differentiated.</param>
/// <param name="WorstError">The largest max |g32 - g64| / max |g64| over the runs (infinite for NaN).</param>
/// <param name="WrongRuns">Runs whose error exceeded the tolerance.</param>
/// <param name="Runs">Float32 runs.</param>
/// <param name="Repeatable">Whether every float32 run gave the same bits.</param>
/// <param name="Finite">Whether every float32 gradient was finite.</param>
/// <param name="Seconds">Time taken by the case (reference and runs).</param>
internal sealed record GradientCheckRow(string Name, double WorstError, int WrongRuns, int Runs, bool Repeatable, bool Finite, double Seconds);

/// <summary>The result of a <see cref="GradientCheck"/>.</summary>
internal sealed record GradientCheckReport(IReadOnlyList<GradientCheckRow> Rows, double Tolerance)
{
    /// <summary>True when every case was within the tolerance in every run.</summary>
    public bool Passed => Rows.All(r => r.WrongRuns == 0);

    /// <summary>The cases that failed.</summary>
    public IEnumerable<GradientCheckRow> Failures => Rows.Where(r => r.WrongRuns > 0);

    /// <summary>One line per failing case, for error messages.</summary>
    public string DescribeFailures() => string.Join("; ", Failures.Select(r =>
        $"{r.Name}: {r.WrongRuns} of {r.Runs} runs off (worst {Format(r.WorstError)}{(r.Finite ? "" : ", NaN/inf")}{(r.Repeatable ? "" : ", differs run to run")})"));

    /// <summary>An error as printed: a number, or "NaN".</summary>
    public static string Format(double error) => double.IsInfinity(error) ? "NaN/inf" : error.ToString("0.0e+0", System.Globalization.CultureInfo.InvariantCulture);
}
