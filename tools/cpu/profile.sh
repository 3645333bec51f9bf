#!/bin/bash
# Where the side-by-side rows' time goes (issue 25): bash tools/cpu/profile.sh [options]
# Per row (default unet_fwd_b32,unet_fwdbwd_b32,sample_step_b16,train_step_b4), over its timed calls only:
# oneDNN's primitives (ONEDNN_VERBOSE=profile_exec: which convolution kernel, which reorders, ms per call) and, where
# `perf` runs (Debian: apt-get install linux-perf; perf_event_paranoid <= 1, or root), the CPU samples grouped by op.
# Prints markdown tables; writes $OUT/profile.json when OUT is set.
# Options: --rows a,b, --repeats N (5), --warmup N (1), --threads N (2), --no-perf, --top N (12),
# --ddpo "COMMAND" (default: the built CLI, src/Ddpo.Cli/bin/Release/net10.0/ddpo).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
ddpo=""; args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ddpo) ddpo=$2; shift ;;
    --rows|--repeats|--warmup|--threads|--top) args+=("$1" "$2"); shift ;;
    --no-perf) args+=("$1") ;;
    *) echo "profile.sh: unknown argument '$1' (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$ddpo" ]; then
  ddpo="$root/src/Ddpo.Cli/bin/Release/net10.0/ddpo"
  [ -x "$ddpo" ] || { echo "profile.sh: no $ddpo: run 'dotnet build src/Ddpo.Cli -c Release' first, or pass --ddpo" >&2; exit 2; }
fi
json=()
[ -n "${OUT:-}" ] && { mkdir -p "$OUT"; json=(--json "$OUT/profile.json"); }
exec python3 "$here/profile.py" --ddpo "$ddpo" "${args[@]}" "${json[@]}"
