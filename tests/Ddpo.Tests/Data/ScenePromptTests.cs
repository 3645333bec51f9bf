using Ddpo.Data;
using Xunit;

namespace Ddpo.Tests.Data;

public class ScenePromptTests
{
    [Theory]
    [InlineData("cat", "a")]
    [InlineData("ant", "an")]
    [InlineData("elephant", "an")]
    [InlineData("owl", "an")]
    [InlineData("otter", "an")]
    [InlineData("iguana", "an")]
    [InlineData("unicorn", "a")]
    [InlineData("hour", "an")]
    [InlineData("horse", "a")]
    [InlineData("ewe", "a")]
    public void ArticleFollowsTheFirstSound(string word, string article) => Assert.Equal(article, EnglishArticle.For(word));

    [Fact]
    public void OnlyAntTakesAnAmongTheAnimals()
    {
        var withAn = SpriteCatalog.AnimalNames.Where(a => new ScenePrompt(a).Caption.StartsWith("an ", StringComparison.Ordinal)).ToArray();
        Assert.Equal(["ant"], withAn);
        Assert.Equal("a cat riding a bike", new ScenePrompt("cat", "riding a bike").Caption);
        Assert.Equal("an ant washing the dishes", new ScenePrompt("ant", "washing the dishes").Caption);
    }

    [Fact]
    public void ParseRoundTripsEveryCaption()
    {
        foreach (var animal in SpriteCatalog.AnimalNames)
        {
            foreach (var activity in SpriteCatalog.ActivityNames.Append(null))
            {
                var prompt = new ScenePrompt(animal, activity);
                Assert.Equal(prompt, ScenePrompt.Parse(prompt.Caption));
            }
        }
        Assert.Equal(new ScenePrompt("ant", "playing chess"), ScenePrompt.Parse("  An  ANT playing   chess "));
    }

    [Theory]
    [InlineData("a unicorn", "unknown animal 'unicorn'")]
    [InlineData("a cat juggling", "unknown activity 'juggling'")]
    [InlineData("a", "expected 'a(n) ANIMAL [ACTIVITY]'")]
    public void ParseRejectsUnknownWords(string prompt, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => ScenePrompt.Parse(prompt));
        Assert.Contains(message, e.Message);
        Assert.Contains(prompt, e.Message);
    }
}
