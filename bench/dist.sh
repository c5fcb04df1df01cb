#!/usr/bin/env bash
# Data-parallel search steps (docs/SCALING.md): the demo space's supernet
# (examples/fashion_mnist.dartsc, global batch 64) as 1 and 2 processes of 1 thread each
# under Open MPI's mpirun, first and second order. Each process computes its part of the
# global batch (64, or 32 + 32) and the gradients are summed by runtime/dist.c's
# rank-order all-reduce. Prints one JSON line per run from tests/dist_step.c: seconds
# per step, and seconds per step spent inside collectives (the all-reduces of the weight
# and alpha gradients, the loss sums, and waiting there for the slower process).
#   bench/dist.sh [RANKS] [ORDERS]        e.g. bench/dist.sh "1 2" "1 2"
# Environment: DIST_STEP (binary, default ./build/dist_step), STEPS (timed steps after
# one warm-up, 10), REPEAT (runs of each configuration, alternating, 3), SPACE (default
# the demo space; SPACE=examples/ptb_fortunes.dartsc: the recurrent search's steps, each
# process taking half of the batch's 32 columns).
set -euo pipefail
cd "$(dirname "$0")/.."
ranks="${1:-1 2}"
orders="${2:-1 2}"
bin="${DIST_STEP:-./build/dist_step}"
steps="${STEPS:-10}"
repeat="${REPEAT:-3}"
space="${SPACE:-examples/fashion_mnist.dartsc}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for r in $(seq "$repeat"); do
  for o in $orders; do
    for n in $ranks; do
      mpirun --oversubscribe -n "$n" "$bin" "$space" "$out/g.dtns" --order "$o" --steps "$steps"
    done
  done
done
