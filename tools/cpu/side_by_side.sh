#!/bin/bash
# Side-by-side CPU speed table against PyTorch + diffusers (issue 25): bash tools/cpu/side_by_side.sh [options]
# Ours (`ddpo bench rows --serve`) and PyTorch (tools/cpu/torch_rows.py) run as one process pair at 2 threads each;
# per row both load the same folder and the same inputs, warm up once, then time 5 interleaved calls (medians).
# Prints a markdown table whose last line is `min ratio R over N rows`; writes $OUT/side_by_side.json when OUT is set.
#
# PyTorch's side needs a set-up refenv: DDPO_REFENV (default ../shared/refenv) holding site/.stamp and env.sh.
# ../shared is read-only, so set one up elsewhere:
#     cp -r ../shared/refenv /some/dir/refenv && REFENV_MIRROR=/folder/of/OWNER+NAME/repo bash /some/dir/refenv/setup.sh
#     DDPO_REFENV=/some/dir/refenv bash tools/cpu/side_by_side.sh
# Without it, our side runs alone and the table says PyTorch's side was skipped.
# Options: --rows a,b (default all), --repeats N (5), --warmup N (1), --threads N (2), --ddpo "COMMAND"
# (default: the built CLI, src/Ddpo.Cli/bin/Release/net10.0/ddpo; build it with `dotnet build src/Ddpo.Cli -c Release`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
refenv=${DDPO_REFENV:-$root/../shared/refenv}
ddpo=""; args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ddpo) ddpo=$2; shift ;;
    --rows|--repeats|--warmup|--threads) args+=("$1" "$2"); shift ;;
    *) echo "side_by_side.sh: unknown argument '$1' (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
source "$root/tools/built-cli.sh"
[ -n "$ddpo" ] || ddpo=$(built_cli side_by_side.sh) || exit 2
ref=()
if [ -f "$refenv/site/.stamp" ] && [ -f "$refenv/env.sh" ]; then
  ref=(--refenv "$(cd "$refenv" && pwd)")
else
  echo "side_by_side.sh: PyTorch's side skipped: no set-up refenv at $refenv (no site/.stamp). Copy ../shared/refenv to a" \
    "writable folder, run its setup.sh with REFENV_MIRROR set (see its README.md), and pass DDPO_REFENV=that folder." >&2
fi
work=${OUT:-$(mktemp -d)}/side_by_side
json=(); [ -n "${OUT:-}" ] && json=(--json "$OUT/side_by_side.json")
cd "$root"
exec python3 "$here/side_by_side.py" --ddpo "$ddpo" "${ref[@]}" --work "$work" "${json[@]}" "${args[@]}"
