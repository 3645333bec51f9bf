using Ddpo.Benchmarks;
using Ddpo.Models.Loading;
using Ddpo.Pipelines;
using Ddpo.Tests.Support;
using Xunit;

namespace Ddpo.Tests.Benchmarks;

/// <summary>The side-by-side rows build, count FLOPs and write the inputs PyTorch's side reads (the tiny rows only: seconds).</summary>
public sealed class SideBySideRowsTests
{
    [Theory]
    [InlineData("sd3_fwd", "hidden_states")]
    [InlineData("flux_fwd", "img_ids")]
    [InlineData("vae_decode_b16", "z")]
    public void TinyRowRunsCountsFlopsAndWritesItsInputs(string name, string inputKey)
    {
        var dir = TestPaths.NewTempDir("ddpo-sbs");
        try
        {
            using var row = SideBySideRows.Create(name, BuiltinModel.Directory, TestPaths.Fixture("refenv"));
            Assert.True(row.Flops > 1e5, $"{name}: {row.Flops} FLOPs");
            row.Call();
            var path = Path.Combine(dir, name + ".safetensors");
            SideBySideRows.WriteInputs(row, path);
            var back = SafetensorsFile.Load(path);
            Assert.Equal(row.Inputs.Keys.Order(), back.Keys.Order());
            Assert.Equal(row.Inputs[inputKey].shape, back[inputKey].shape);
            Assert.True(back[inputKey].eq(row.Inputs[inputKey]).all().item<bool>());
            foreach (var t in back.Values) t.Dispose();
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void UnknownRowNamesTheRows()
    {
        var e = Assert.Throws<ArgumentException>(() => SideBySideRows.Create("nope", BuiltinModel.Directory, TestPaths.Fixture("refenv")));
        Assert.Contains("unet_fwd_b32", e.Message);
    }
}
