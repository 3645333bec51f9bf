#:project ../src/Ddpo.Pretraining/Ddpo.Pretraining.csproj
// Writes a preview grid of synthetic training scenes and prints generation speed and JPEG sizes.
// usage: dotnet run tools/preview-scenes.cs -- OUT.png [COUNT=48] [SIZE=32] [SEED=0] [ZOOM=3]
using Ddpo.Data;
using Ddpo.Rewards;

var outPath = args.Length > 0 ? args[0] : "preview.png";
int count = args.Length > 1 ? int.Parse(args[1]) : 48;
int size = args.Length > 2 ? int.Parse(args[2]) : 32;
int seed = args.Length > 3 ? int.Parse(args[3]) : 0;
int zoom = args.Length > 4 ? int.Parse(args[4]) : 3;

using var generator = new EmojiSceneGenerator(size);
var pixels = new byte[count * generator.ImageBytes];
var captions = generator.GenerateBatch(count, new Random(seed), SpriteCatalog.AnimalNames, SpriteCatalog.ActivityNames, 0.33, pixels);
SceneImages.SaveGridPng(outPath, pixels, count, size, columns: 8, zoom: zoom);
for (int i = 0; i < count; i += 8) Console.WriteLine(string.Join(" | ", captions.Skip(i).Take(8)));

var jpeg = Enumerable.Range(0, count).Select(i => JpegEncoding.Encode(SceneImages.Interleave(pixels.AsSpan(i * generator.ImageBytes, generator.ImageBytes)), size, size).Length).ToArray();
Console.WriteLine($"JPEG q95 bytes: min {jpeg.Min()} max {jpeg.Max()} median {jpeg.Order().ElementAt(count / 2)}");

const int timed = 20000;
var big = new byte[timed * generator.ImageBytes];
generator.GenerateBatch(200, new Random(1), SpriteCatalog.AnimalNames, SpriteCatalog.ActivityNames, 0.25, big); // warm up
var sw = System.Diagnostics.Stopwatch.StartNew();
generator.GenerateBatch(timed, new Random(2), SpriteCatalog.AnimalNames, SpriteCatalog.ActivityNames, 0.25, big);
Console.WriteLine($"{timed} images of {size}px in {sw.Elapsed.TotalSeconds:F2} s ({timed / sw.Elapsed.TotalSeconds:F0}/s)");
