#!/usr/bin/env bash
# Runs the six toy findings on two lanes (one core each), then prints the table rows.
# Usage: examples/run_all.sh [OUT] [STEPS]   (defaults: /tmp/weaksup-examples, 300)
# Each lane is one process at a time with one thread, so the two lanes share two cores
# without their OpenMP threads waiting on each other. Rows land in examples/results/*.md.
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-/tmp/weaksup-examples}"
steps="${2:-300}"
mkdir -p results
export OMP_NUM_THREADS=1
run() { python "$1.py" --out "$out" --steps "$steps" > "results/$1.md" 2> "results/$1.log"; }
python -c "import sys; sys.path.insert(0, '.'); import common; common.corpus('$out')"  # once, before the lanes
# about 20 pre-training runs a lane; scripts that share a run (more_data and tail_sampling
# train the same random half; pretrain_vs_scratch, more_data and contamination the full pool)
# sit in one lane, in that order, so two processes never train the same folder
( run pretrain_vs_scratch && run more_data && run tail_sampling && run contamination ) &
lane_a=$!
( run temporal_splits && run frames_vs_clips ) &
lane_b=$!
wait "$lane_a" "$lane_b"
cat results/*.md
