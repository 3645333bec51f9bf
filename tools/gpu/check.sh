#!/bin/bash
# The GPU check of issue 9, in one call: PyTorch's half (tools/gpu/torch_bench.py, with the machine's PyTorch +
# diffusers), then ours (`ddpo gpu-check`), which merges both into $OUT/gpu-check.json and $OUT/gpu-check.md.
#
# On the accelerator machine (after ../shared/gpu/bundle.sh src/Ddpo.Cli/Ddpo.Cli.csproj here; run with carry [".gpu"]):
#     bash tools/gpu/check.sh                      # full: Stable Diffusion 1.4 sizes, at most 8 minutes on an H100/H200
# The fixtures it needs (see FixtureParity.RequiredEntries) are byte-identical copies of ../shared/fixtures under
# tests/Ddpo.Tests/Fixtures, which travel with the working tree; a whole copy of ../shared/fixtures in .gpu/fixtures
# (17 MB) would push the call past the 64 MiB it may send (bundle 37 MB + tracked files 22 MB), so copy only what
# differs there, and pass --fixtures DIR for another folder.
# Anywhere, in seconds (tiny sizes, CPU; the PyTorch half is skipped with a message when `import torch` fails):
#     bash tools/gpu/check.sh --smoke
# Options: --out DIR (default $OUT, else ./gpu-check-out), --fixtures DIR (default .gpu/fixtures, else
# tests/Ddpo.Tests/Fixtures), --ddpo "COMMAND" (default: bash .gpu/run.sh where bundled, else the built CLI),
# --device cpu|cuda (default: cuda for the full check, cpu for --smoke); anything after -- goes to `ddpo gpu-check`.
# Exit code: ours (0: all correctness rows pass and nothing failed; 4: a check failed; 124: out of time).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
out=${OUT:-$root/gpu-check-out}; smoke=0; fixtures=""; ddpo=""; device=""; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --out) out=$2; shift ;;
    --fixtures) fixtures=$2; shift ;;
    --ddpo) ddpo=$2; shift ;;
    --device) device=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "check.sh: unknown argument '$1' (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
if [ -z "$fixtures" ]; then
  for f in "$root/.gpu/fixtures" "$root/tests/Ddpo.Tests/Fixtures"; do [ -f "$f/ddim_logprob.safetensors" ] && { fixtures=$f; break; }; done
fi
[ -n "$fixtures" ] || { echo "check.sh: no fixtures: copy ../shared/fixtures to .gpu/fixtures or pass --fixtures DIR" >&2; exit 2; }
if [ -z "$ddpo" ]; then
  if [ -f "$root/.gpu/run.sh" ]; then ddpo="bash $root/.gpu/run.sh"
  elif [ -x "$root/src/Ddpo.Cli/bin/Release/net10.0/ddpo" ]; then ddpo="$root/src/Ddpo.Cli/bin/Release/net10.0/ddpo"
  else echo "check.sh: no ddpo: bundle it (../shared/gpu/bundle.sh src/Ddpo.Cli/Ddpo.Cli.csproj) or build it, or pass --ddpo" >&2; exit 2
  fi
fi
if [ $smoke = 1 ]; then mode=(--smoke); device=${device:-cpu}; torch_limit=120; ours_limit=300
else mode=(); device=${device:-cuda}; torch_limit=200; ours_limit=250
fi
log() { echo "[check.sh $(date +%H:%M:%S)] $*"; }
command -v nvidia-smi >/dev/null && nvidia-smi > "$out/nvidia-smi.txt" 2>&1

# PyTorch's half first: its file is merged by ours; a failure or a missing torch only leaves a note in the tables.
log "PyTorch half (limit ${torch_limit}s)"
timeout -k 10 $torch_limit python3 "$here/torch_bench.py" --out "$out/torch-bench.json" "${mode[@]}" --device "$device" \
  || log "torch_bench.py ended with code $? (see its output above; what it measured is in $out/torch-bench.json)"

# ours: CUDA from the machine's PyTorch (TorchSharp 0.107 drives PyTorch 2.x's libtorch)
libtorch=()
if [ "$device" != cpu ]; then
  lib=$(python3 -c "import torch,os;print(os.path.join(os.path.dirname(torch.__file__),'lib'))" 2>/dev/null) && libtorch=(--libtorch "$lib")
fi
log "ours: $ddpo gpu-check (limit ${ours_limit}s)"
timeout -k 10 $ours_limit $ddpo gpu-check --out "$out" --fixtures "$fixtures" --torch-results "$out/torch-bench.json" \
  --device "$device" "${libtorch[@]}" "${mode[@]}" "${extra[@]}"
code=$?
log "done (code $code): $out/gpu-check.md"
[ -f "$out/gpu-check.md" ] && cat "$out/gpu-check.md"
exit $code
