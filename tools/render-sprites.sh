#!/usr/bin/env bash
# Regenerates the embedded emoji sprites (src/Ddpo.Pretraining/Data/Sprites/*.png) from Noto Color Emoji.
# Needs the font: Debian/Ubuntu `apt-get install fonts-noto-color-emoji` (or pass its path as $1).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
font="${1:-/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf}"
out="${2:-$root/src/Ddpo.Pretraining/Data/Sprites}"
cd "$root"
dotnet run tools/render-sprites.cs -- "$font" "$out"
du -ch "$out"/*.png | tail -1
