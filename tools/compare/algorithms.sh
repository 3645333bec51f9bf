#!/bin/bash
# Policy gradients against reward backpropagation on one task (issue 24): bash tools/compare/algorithms.sh [options]
# Trains one run per (algorithm, seed) on the built-in model with a differentiable reward (brightness; the other image
# statistics and JPEG compressibility as watch rewards), the same samples per epoch and epochs for every algorithm,
# evaluates each run with `ddpo eval` on the train and held-out prompts, and writes under $OUT (default out/compare):
#   runs/ALG-sSEED/        the run folder (metrics.jsonl, checkpoints, eval/eval-epoch-N.json)
#   runs/ALG-sSEED.train.log, .train.time, .eval.log, .eval.time   logs and `/usr/bin/time -v` of each process
#   summary.md, summary.json   per run and mean of seeds (tools/compare/summary.py; rerun it alone on a finished $OUT)
#   comparison.html (+ comparison.png with headless Chromium)   `ddpo report` over the finished runs
# Options:
#   --algorithms a,b   (default ddpo_is,grpo,draft,refl)      --seeds 1,2,3 (default)     --epochs N (default 6)
#   --set K=V          passed to every `ddpo train` (repeatable; after the task's settings, so it overrides them)
#   --alg-set ALG:K=V  passed to ALG's runs only (repeatable; after the algorithm's own settings below)
#   --threads N        CPU threads per process (default 1)        --jobs N   runs at a time (default 2)
#   --eval-seeds N     images per prompt in `ddpo eval` (2)       --eval-prompts N   --max-prompts of `ddpo eval` (12)
#   --no-eval          skip `ddpo eval`                           --model DIR   a pipeline folder instead of the built-in model
#   --ddpo PATH        the CLI (default the built one, src/Ddpo.Cli/bin/Release/net10.0/ddpo: `dotnet build src/Ddpo.Cli -c Release`)
# Runs go seed-major (every algorithm's seed 1, then seed 2, ...), so a matrix cut short still has whole seeds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
algorithms=ddpo_is,grpo,draft,refl; seeds=1,2,3; epochs=6; threads=1; jobs=2; eval_seeds=2; eval_prompts=12; do_eval=1
ddpo=""; model=""; sets=(); alg_sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --algorithms) algorithms=$2; shift ;;
    --seeds) seeds=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    --set) sets+=("$2"); shift ;;
    --alg-set) alg_sets+=("$2"); shift ;;
    --threads) threads=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --eval-seeds) eval_seeds=$2; shift ;;
    --eval-prompts) eval_prompts=$2; shift ;;
    --no-eval) do_eval=0 ;;
    --model) model=$2; shift ;;
    --ddpo) ddpo=$2; shift ;;
    *) echo "algorithms.sh: unknown argument '$1' (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
source "$root/tools/built-cli.sh"
[ -n "$ddpo" ] || ddpo=$(built_cli algorithms.sh) || exit 2
[ -x /usr/bin/time ] || { echo "algorithms.sh: /usr/bin/time (GNU time) is needed for the peak memory (apt-get install time)" >&2; exit 2; }
out=${OUT:-$root/out/compare}; mkdir -p "$out/runs"; out=$(cd "$out" && pwd)

# The task, the same for every algorithm: 6 epochs x 32 samples (8 prompts x 4), one optimizer step per epoch
# (8 accumulated micro-batches of 4), the built-in model's 10 DDIM steps and lr 5e-3.
task=(reward_fn=brightness watch_rewards=image_contrast,colorfulness,jpeg_compressibility
  sample.samples_per_epoch=32 sample.batch_size=8 sample.group_size=4 train.total_batch_size=32 train.batch_size=4
  logging.num_eval_images=0 save_freq=100)
# What each algorithm needs of its own (config names as `ddpo config` prints them).
alg_defaults() {
  case "$1" in
    draft) echo "draft.k=1" ;;
    refl) echo "refl.min_step=7 refl.max_step=9" ;; # ReFL's 30..39 of 40 steps, scaled to 10
    *) echo "" ;;
  esac
}

run_one() {
  local alg=$1 seed=$2 name="$1-s$2" dir="$out/runs/$1-s$2" args=()
  for kv in "${task[@]}" $(alg_defaults "$alg") "${sets[@]}"; do args+=(--set "$kv"); done
  for a in "${alg_sets[@]}"; do [ "${a%%:*}" = "$alg" ] && args+=(--set "${a#*:}"); done
  [ -n "$model" ] && args+=(--model "$model")
  rm -rf "$dir"
  echo "$(date -u +%T) start $name"
  if /usr/bin/time -v -o "$dir.train.time" "$ddpo" train --run-dir "$dir" --threads "$threads" --skip-gradient-check \
      --epochs "$epochs" --set algorithm="$alg" --set seed="$seed" "${args[@]}" >"$dir.train.log" 2>&1; then
    if [ "$do_eval" = 1 ]; then
      /usr/bin/time -v -o "$dir.eval.time" "$ddpo" eval --run "$dir" --threads "$threads" --prompts train --prompts held-out \
        --seeds "$eval_seeds" --max-prompts "$eval_prompts" >"$dir.eval.log" 2>&1 || echo "$(date -u +%T) EVAL FAILED $name (see $dir.eval.log)"
    fi
    echo "$(date -u +%T) done $name"
  else
    echo "$(date -u +%T) TRAIN FAILED $name: $(tail -n 3 "$dir.train.log" | tr '\n' ' ')"
  fi
}

IFS=, read -ra algs <<<"$algorithms"; IFS=, read -ra seedlist <<<"$seeds"
for seed in "${seedlist[@]}"; do
  for alg in "${algs[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    run_one "$alg" "$seed" &
  done
done
wait
python3 "$here/summary.py" "$out" --algorithms "$algorithms" --seeds "$seeds"
# The runs' reward curves in one page (`ddpo report`), and its screenshot where headless Chromium is installed.
finished=(); for alg in "${algs[@]}"; do for seed in "${seedlist[@]}"; do
  [ -s "$out/runs/$alg-s$seed/metrics.jsonl" ] && finished+=("$out/runs/$alg-s$seed"); done; done
if [ "${#finished[@]}" -ge 2 ]; then
  "$ddpo" report "${finished[@]}" --out "$out/comparison.html"
  if command -v chromium >/dev/null; then
    chromium --headless --no-sandbox --disable-gpu --screenshot="$out/comparison.png" --window-size=1800,1400 "file://$out/comparison.html" \
      >/dev/null 2>&1 && echo "wrote $out/comparison.png" || echo "algorithms.sh: the Chromium screenshot failed (the HTML is there)" >&2
  fi
fi
