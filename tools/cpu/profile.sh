#!/bin/bash
# Where the side-by-side rows' time goes (issue 25): bash tools/cpu/profile.sh [options]
# Per row (default unet_fwd_b32,unet_fwdbwd_b32,sample_step_b16,train_step_b4), over its timed calls only:
# oneDNN's primitives (ONEDNN_VERBOSE=profile_exec: which convolution kernel, which reorders, ms per call) and, where
# `perf` runs (Debian: apt-get install linux-perf; perf_event_paranoid <= 1, or root), the CPU samples grouped by op.
# Prints markdown tables; writes $OUT/profile.json when OUT is set. docs/cpu-profile.md has what it found.
# Options: --rows a,b, --repeats N (5), --warmup N (1), --threads N (2), --no-perf, --top N (12),
# --ddpo "COMMAND" (default: the built CLI, src/Ddpo.Cli/bin/Release/net10.0/ddpo).
exec python3 "$(dirname "$0")/profile.py" "$@"
