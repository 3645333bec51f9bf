using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpo.Models.T5;

/// <summary>
/// transformers' <c>T5DenseGatedActDense</c> (<c>gated-gelu</c>: wo(gelu_new(wi_0 x) · wi_1 x)) or
/// <c>T5DenseActDense</c> (<c>relu</c>: wo(relu(wi x))), under the state-dict name <c>DenseReluDense</c>.
/// </summary>
internal sealed class T5FeedForward : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the transformers state-dict names
    private readonly Linear? wi;
    private readonly Linear? wi_0;
    private readonly Linear? wi_1;
    private readonly Linear wo;
#pragma warning restore IDE1006

    public T5FeedForward(T5Config config, Device? device) : base("DenseReluDense")
    {
        if (config.IsGatedAct)
        {
            wi_0 = nn.Linear(config.DModel, config.DFf, hasBias: false, device: device);
            wi_1 = nn.Linear(config.DModel, config.DFf, hasBias: false, device: device);
        }
        else
        {
            wi = nn.Linear(config.DModel, config.DFf, hasBias: false, device: device);
        }
        wo = nn.Linear(config.DFf, config.DModel, hasBias: false, device: device);
        RegisterComponents();
    }

    /// <summary>transformers' <c>_init_weights</c>: wi std d_model^-½, wo std d_ff^-½.</summary>
    public void Initialize(double factor, Generator? generator)
    {
        using (no_grad())
        {
            foreach (var layer in new[] { wi, wi_0, wi_1 })
            {
                if (layer is not null) nn.init.normal_(layer.weight!, 0, factor * Math.Pow(layer.weight!.shape[1], -0.5), generator);
            }
            nn.init.normal_(wo.weight!, 0, factor * Math.Pow(wo.weight!.shape[1], -0.5), generator);
        }
    }

    /// <summary>transformers' <c>NewGELUActivation</c> (<c>gelu_new</c>): the tanh approximation.</summary>
    public static Tensor GeluNew(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = 0.5 * x * (1.0 + torch.tanh(Math.Sqrt(2.0 / Math.PI) * (x + 0.044715 * torch.pow(x, 3.0))));
        return y.MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = wi_0 is not null ? GeluNew(wi_0.forward(x)) * wi_1!.forward(x) : nn.functional.relu(wi!.forward(x));
        // transformers casts to wo's dtype (a float32 wo kept in a half model).
        if (h.dtype != wo.weight!.dtype) h = h.to(wo.weight.dtype);
        return wo.forward(h).MoveToOuterDisposeScope();
    }
}
