using Ddpo.Tests.Support;
using Ddpo.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ddpo.Tests.Training;

public sealed class PolicyLossTests
{
    [Fact]
    public void AtRatioOneLossIsMinusMeanClampedAdvantage()
    {
        using var scope = NewDisposeScope();
        var logp = tensor(new double[] { -3.0, -1.2, 0.4, 2.0 });
        var adv = tensor(new double[] { -7.0, -1.0, 0.5, 6.0 });
        var (loss, kl, clipFrac) = PolicyLoss.DdpoIs(logp, logp.clone(), adv, clipRange: 1e-4, advClipMax: 5);
        double expected = -(-5.0 - 1.0 + 0.5 + 5.0) / 4;
        Assert.Equal(expected, loss.item<double>(), 12);
        Assert.Equal(0.0, kl.item<double>(), 12);
        Assert.Equal(0.0, clipFrac.item<double>(), 12);
    }

    [Fact]
    public void ClippingIsPessimisticAndCountsClippedRatios()
    {
        using var scope = NewDisposeScope();
        double eps = 0.1;
        double[] ratios = [1.5, 1.5, 0.5, 0.5, 1.05];
        double[] a = [2.0, -2.0, 2.0, -2.0, 1.0];
        var old = zeros(5, dtype: ScalarType.Float64);
        var logp = tensor(ratios.Select(r => Math.Log(r)).ToArray()).requires_grad_(true);
        var (loss, kl, clipFrac) = PolicyLoss.DdpoIs(logp, old, tensor(a), eps, advClipMax: 10);
        // Per element max(-A r, -A clip(r)): A>0,r>1+eps -> clipped; A<0,r>1+eps -> unclipped;
        // A>0,r<1-eps -> unclipped; A<0,r<1-eps -> clipped; inside the range both agree.
        double[] terms = [-2.0 * 1.1, 2.0 * 1.5, -2.0 * 0.5, 2.0 * 0.9, -1.0 * 1.05];
        Assert.Equal(terms.Average(), loss.item<double>(), 12);
        Assert.Equal(4.0 / 5, clipFrac.item<double>(), 12);
        Assert.Equal(0.5 * ratios.Select(r => Math.Log(r) * Math.Log(r)).Average(), kl.item<double>(), 12);

        loss.backward();
        var grad = logp.grad!.data<double>().ToArray();
        // d/dlogp of -A r / N is -A r / N where the unclipped term is active, 0 where clipped.
        double[] expectedGrad = [0, 2.0 * 1.5 / 5, -2.0 * 0.5 / 5, 0, -1.0 * 1.05 / 5];
        for (int i = 0; i < 5; i++) Assert.Equal(expectedGrad[i], grad[i], 12);
    }

    [Fact]
    public void DdpoIsGradientMatchesFiniteDifferences()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(7);
        int n = 16;
        var old = randn(new long[] { n }, dtype: ScalarType.Float64, generator: gen);
        // log-ratios spread over [-0.45, 0.45] on a grid that avoids the clip kinks at log(1 +- 0.2).
        var delta = linspace(-0.45, 0.45, n, dtype: ScalarType.Float64);
        var adv = randn(new long[] { n }, dtype: ScalarType.Float64, generator: gen) * 3;
        var logp = (old + delta).detach().requires_grad_(true);
        var (loss, _, _) = PolicyLoss.DdpoIs(logp, old, adv, clipRange: 0.2, advClipMax: 5);
        loss.backward();
        var analytic = logp.grad!.clone();

        var numeric = zeros(n, dtype: ScalarType.Float64);
        double h = 1e-6;
        using (no_grad())
        {
            for (int i = 0; i < n; i++)
            {
                var plus = logp.detach().clone();
                plus[i] += h;
                var minus = logp.detach().clone();
                minus[i] -= h;
                double fp = PolicyLoss.DdpoIs(plus, old, adv, 0.2, 5).Loss.item<double>();
                double fm = PolicyLoss.DdpoIs(minus, old, adv, 0.2, 5).Loss.item<double>();
                numeric[i] = (fp - fm) / (2 * h);
            }
        }
        TensorAssert.Close(numeric, analytic, atol: 1e-8, rtol: 1e-6, what: "dLoss/dlogp");
        Assert.True(analytic.abs().sum().item<double>() > 0, "some gradients must be non-zero");
        Assert.True((analytic == 0).sum().item<long>() > 0, "some ratios must be clipped");
    }

    [Fact]
    public void ScoreFunctionLossAndGradient()
    {
        using var scope = NewDisposeScope();
        var logp = tensor(new double[] { -1.0, 0.5, 2.0 }).requires_grad_(true);
        var adv = tensor(new double[] { 8.0, -0.5, 1.0 });
        var loss = PolicyLoss.DdpoSf(logp, adv, advClipMax: 5);
        Assert.Equal(-(5.0 * -1.0 + -0.5 * 0.5 + 1.0 * 2.0) / 3, loss.item<double>(), 12);
        loss.backward();
        var grad = logp.grad!.data<double>().ToArray();
        double[] expectedGrad = [-5.0 / 3, 0.5 / 3, -1.0 / 3];
        for (int i = 0; i < 3; i++) Assert.Equal(expectedGrad[i], grad[i], 12);

        Assert.Throws<ArgumentException>(() => PolicyLoss.DdpoSf(logp, zeros(2, dtype: ScalarType.Float64), 5));
    }
}
