#!/usr/bin/env bash
# Decoding once across the stages of `dartsc run` (docs/BENCHMARKS.md, "Data loading"):
# a run with a tiny budget (one search epoch and one retraining epoch over 64 images, 64
# test images evaluated) on the 60,000 + 10,000-image PNG folder that bench/data_load.sh
# writes, so that the run's time is mostly reading data. Prints the run's "data: read"
# lines (one per split: each is decoded once) and its wall, user and system seconds;
# with DARTSC_BASE=/path/to/older/dartsc the same run of that binary follows (before
# the split was kept, the training split was decoded by the normalisation, the search
# and the retraining), alternating ROUNDS times (default 2).
#   bench/data_run.sh [WORK_DIR]   (default /tmp/dartsc-data-bench; THREADS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/dartsc-data-bench}"
export OMP_NUM_THREADS="${THREADS:-2}" OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
[ -d "$work/png/train" ] || { echo "no $work/png: run bench/data_load.sh $work first" >&2; exit 1; }
space="$work/run_space.dartsc"
cat > "$space" <<SPACE
ops small = { none, max_pool(3), skip, sep_conv(3) }
cell normal { nodes 2; keep 2; ops small }
cell reduce : normal { reduction }
network tiny { data images "$work/png"; input 1x28x28; classes 10; C 4; layers 3 }
settings s { batch 32; seed 1 }
search : s { epochs 1; order 1; subset 64 }
train : s { C 4; layers 3; epochs 1; subset 64; test_subset 64; drop_path 0; aux_weight 0 }
SPACE
one() { # $1 label, $2 binary
  local out="$work/run_$1" log="$work/run_$1.log"
  rm -rf "$out"
  /usr/bin/time -f "%e %U %S" -o "$work/time_$1" "$2" run "$space" --out "$out" --device cpu > "$log" 2>&1
  read -r wall user sys < "$work/time_$1"
  grep '^data: read' "$log" | sed "s/^/  [$1] /" || true
  echo "{\"binary\": \"$1\", \"wall_s\": $wall, \"user_s\": $user, \"sys_s\": $sys, \"threads\": $OMP_NUM_THREADS, \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
}
sync
for r in $(seq "${ROUNDS:-2}"); do
  one new ./build/dartsc
  [ -z "${DARTSC_BASE:-}" ] || one base "$DARTSC_BASE"
done
