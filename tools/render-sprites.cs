#:project ../src/Ddpo.Pretraining/Ddpo.Pretraining.csproj
// Regenerates src/Ddpo.Pretraining/Data/Sprites/*.png from the Noto Color Emoji font.
// Run through tools/render-sprites.sh (a .NET 10 file-based app: `dotnet run tools/render-sprites.cs -- FONT OUTDIR`).
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: dotnet run tools/render-sprites.cs -- FONT.ttf OUTDIR");
    return 2;
}
foreach (var path in Ddpo.Data.SpriteRenderer.RenderAll(args[0], args[1]))
{
    Console.WriteLine($"{new FileInfo(path).Length,6} {path}");
}
return 0;
