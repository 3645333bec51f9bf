using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Pretraining;

/// <summary>An exponential moving average of parameters, which can be swapped in for saving or sampling.</summary>
internal sealed class EmaWeights : IDisposable
{
    private readonly IReadOnlyList<Parameter> _parameters;
    private readonly List<Tensor> _average;
    private readonly double _decay;
    private int _updates;

    /// <summary>Starts the average at the current values.</summary>
    public EmaWeights(IReadOnlyList<Parameter> parameters, double decay)
    {
        _parameters = parameters;
        _decay = decay;
        using var _ = no_grad();
        _average = parameters.Select(p => p.detach().clone().DetachFromDisposeScope()).ToList();
    }

    /// <summary>avg = d avg + (1 - d) p, with d warmed up as min(decay, (1 + n) / (10 + n)).</summary>
    public void Update()
    {
        _updates++;
        double d = Math.Min(_decay, (1.0 + _updates) / (10.0 + _updates));
        using var _ = no_grad();
        for (int i = 0; i < _parameters.Count; i++)
        {
            _average[i].mul_(d).add_(_parameters[i].detach(), alpha: 1 - d);
        }
    }

    /// <summary>Copies the averages into the parameters until the returned handle is disposed.</summary>
    public IDisposable SwapIn()
    {
        using var _ = no_grad();
        var saved = _parameters.Select(p => p.detach().clone().DetachFromDisposeScope()).ToList();
        for (int i = 0; i < _parameters.Count; i++) _parameters[i].detach().copy_(_average[i]);
        return new Restore(_parameters, saved);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _average) t.Dispose();
        _average.Clear();
    }

    private sealed class Restore(IReadOnlyList<Parameter> parameters, List<Tensor> saved) : IDisposable
    {
        public void Dispose()
        {
            using var _ = no_grad();
            for (int i = 0; i < parameters.Count; i++) parameters[i].detach().copy_(saved[i]);
            foreach (var t in saved) t.Dispose();
        }
    }
}
