#!/usr/bin/env bash
# Records what a build of ddpo trains on the tiny models, so that a refactoring can be checked to change nothing:
#   tools/parity/metrics-parity.sh DDPO_BINARY OUT_DIR [--default]
#   diff -r OUT_BEFORE/results OUT_AFTER/results      # must print nothing
# Each case trains the tiny pixel (or latent) model for 2 epochs (init-tiny, fixed seeds) and keeps metrics.jsonl without
# its timing fields (*_s, time), the eval images' checksums and the exported weights' checksum. `--default` adds the
# default run (`ddpo train`, about 10 minutes alone on 2 cores). OUT_DIR/runs keeps the run folders: a later build can
# resume one of them (the resume-from-an-old-checkpoint check: case `resume_old`, see below).
set -euo pipefail
ddpo=$(realpath "$1")
out=$(realpath -m "$2")
mkdir -p "$out/results" "$out/runs"
export DDPO_CPU_KERNELS=${DDPO_CPU_KERNELS:-auto}

strip() { # metrics.jsonl without the fields that measure time
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    for k in [k for k in d if k.endswith("_s") or k == "time"]:
        del d[k]
    print(json.dumps(d, sort_keys=True))' "$1"
}

record() { # NAME RUN_DIR
  strip "$2/metrics.jsonl" > "$out/results/$1.metrics.jsonl"
  (cd "$2" && find . -name '*.png' -path './images/*' | sort | xargs -r sha256sum; sha256sum ./*.safetensors 2>/dev/null || true) > "$out/results/$1.files.sha256"
}

models="$out/models"
if [ ! -d "$models/pixel" ]; then
  "$ddpo" init-tiny --out "$models/pixel" --no-vae --sample-size 16 --channels 16,32 --text-hidden 16 --seed 1 >/dev/null
  "$ddpo" init-tiny --out "$models/latent" >/dev/null
fi

base=(--preset compressibility --device cpu --skip-gradient-check
  --set prompt_fn=simple_animals --set sample.num_steps=3 --set sample.batch_size=4 --set sample.num_batches_per_epoch=1
  --set train.batch_size=4 --set train.gradient_accumulation_steps=1 --set pretrained.dtype=fp32
  --set logging.num_eval_images=2 --set save_freq=1)

run_case() { # NAME MODEL ARGS...
  local name=$1 model=$2; shift 2
  local dir="$out/runs/$name"
  rm -rf "$dir"
  echo "== $name"
  "$ddpo" train --model "$models/$model" --run-dir "$dir" "${base[@]}" --epochs 2 "$@" > "$out/runs/$name.log" 2>&1 \
    || { echo "case $name failed: see $out/runs/$name.log"; tail -20 "$out/runs/$name.log"; exit 1; }
  record "$name" "$dir"
}

run_case ddpo_is pixel
run_case ddpo_sf pixel --set algorithm=ddpo_sf
run_case rwr pixel --set algorithm=rwr
run_case rwr_sparse pixel --set algorithm=rwr_sparse --set sample.batch_size=8 --set train.batch_size=2
run_case grpo pixel --set algorithm=grpo --set sample.group_size=2 --set sample.batch_size=4 --set sample.num_batches_per_epoch=2
run_case kl pixel --set train.kl_coef=0.1
run_case sde_window pixel --set sample.num_steps=5 --set 'sample.sde_window=[1,3]' --set sample.sde_window_shift=1
run_case accumulate pixel --set sample.num_batches_per_epoch=2 --set train.batch_size=2 --set train.gradient_accumulation_steps=2 \
  --set train.num_inner_epochs=2 --set train.timestep_fraction=0.67
run_case cfg pixel --set sample.guidance_scale=3.0 --set train.cfg=true
run_case no_cfg pixel --set sample.guidance_scale=1.0 --set train.cfg=false
run_case full_unet pixel --set use_lora=false --set train.learning_rate=1e-5
run_case stat_tracking pixel --set per_prompt_stat_tracking.enabled=true --set per_prompt_stat_tracking.min_count=2 --set sample.num_batches_per_epoch=2
run_case global_adv pixel --set per_prompt_stat_tracking.enabled=false
run_case weighted pixel --set reward_fn=weighted --set 'rewards={jpeg_compressibility=1.0, image_contrast=0.5}' --set watch_rewards=colorfulness
run_case final_step_ddpo pixel --set sample.final_step=ddpo
run_case latent latent
run_case latent_bf16 latent --set pretrained.dtype=bf16

# Resume: one epoch, then --resume to two, must equal the uninterrupted ddpo_is case.
dir="$out/runs/resumed"; rm -rf "$dir"
echo "== resumed"
"$ddpo" train --model "$models/pixel" --run-dir "$dir" "${base[@]}" --epochs 1 > "$out/runs/resumed.log" 2>&1
"$ddpo" train --model "$models/pixel" --run-dir "$dir" "${base[@]}" --epochs 2 --resume >> "$out/runs/resumed.log" 2>&1
record resumed "$dir"

# A run of 1 epoch kept for a later build to resume (resume_old): OLD_OUT/runs/to_resume.
dir="$out/runs/to_resume"; rm -rf "$dir"
"$ddpo" train --model "$models/pixel" --run-dir "$dir" "${base[@]}" --epochs 1 > "$out/runs/to_resume.log" 2>&1
if [ -n "${PARITY_RESUME_FROM:-}" ]; then
  # Resume the folder an earlier build wrote with this build: must give that build's uninterrupted ddpo_is.
  echo "== resume_old (from $PARITY_RESUME_FROM)"
  dir="$out/runs/resume_old"; rm -rf "$dir"; cp -r "$PARITY_RESUME_FROM/runs/to_resume" "$dir"
  "$ddpo" train --model "$models/pixel" --run-dir "$dir" "${base[@]}" --epochs 2 --resume > "$out/runs/resume_old.log" 2>&1
  record resume_old "$dir"
fi

if command -v mpirun >/dev/null; then
  echo "== mpi2"
  dir="$out/runs/mpi2"; rm -rf "$dir"
  mpirun --allow-run-as-root --oversubscribe -np 2 "$ddpo" train --model "$models/pixel" --run-dir "$dir" "${base[@]}" \
    --epochs 2 --set sample.batch_size=2 --set train.batch_size=2 > "$out/runs/mpi2.log" 2>&1
  record mpi2 "$dir"
fi

# Evaluation of a trained run: base vs fine-tuned rewards, fixed seeds.
echo "== eval"
"$ddpo" eval --run "$out/runs/ddpo_is" --seeds 2 --max-prompts 4 > "$out/runs/eval.log" 2>&1 || { tail "$out/runs/eval.log"; exit 1; }
find "$out/runs/ddpo_is/eval" -name '*.json' | sort | while read -r f; do python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
def clean(x):
    if isinstance(x, dict): return {k: clean(v) for k, v in x.items() if not (k.endswith("_s") or k in ("time", "seconds", "run", "out"))}
    if isinstance(x, list): return [clean(v) for v in x]
    return x
print(json.dumps(clean(d), sort_keys=True))' "$f"; done > "$out/results/eval.json"

if [ "${3:-}" = "--default" ]; then
  echo "== default (about 10 minutes)"
  dir="$out/runs/default"; rm -rf "$dir"
  "$ddpo" train --run-dir "$dir" > "$out/runs/default.log" 2>&1
  record default "$dir"
fi
echo "recorded in $out/results"
