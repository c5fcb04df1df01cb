#!/usr/bin/env bash
# Side-by-side CPU benchmark of one DARTS search step: dartsc vs PyTorch (Debian's
# python3-torch) on the same supernet, same batch, same thread count, in one run,
# alternating the two so that background load hits both alike.
#   bench/run.sh [BATCHES] [ORDERS] [FASHION_BATCHES]   e.g. bench/run.sh "16 64" "1 2" "64"
# BATCHES run the CIFAR-10 supernet (examples/darts_cifar10.dartsc), FASHION_BATCHES the
# Fashion demo space (examples/fashion_mnist.dartsc; "" skips it).
# Environment: DARTSC (binary, default ./build/dartsc), THREADS (2), STEPS (timed steps
# after one warm-up, 5), OMP_WAIT_POLICY (PASSIVE for both sides unless set: with
# libgomp's default spinning, a 2-thread dartsc on a loaded 2-core machine measured 15x
# slower, every barrier waiting for a preempted thread; OMP_WAIT_POLICY=default leaves it
# unset for both sides, which is what users get, and is faster on an idle machine).
# Prints JSON lines (bench/plot.py draws them); docs/BENCHMARKS.md records the numbers
# with machine and date.
set -euo pipefail
cd "$(dirname "$0")/.."
batches="${1-16}"
orders="${2:-1 2}"
fbatches="${3-64}"
threads="${THREADS:-2}"
steps="${STEPS:-5}"
dartsc="${DARTSC:-./build/dartsc}"
wait_policy="${OMP_WAIT_POLICY:-PASSIVE}"
if [ "$wait_policy" = default ]; then
  unset OMP_WAIT_POLICY
  export TORCH_STEP_WAIT=default # torch_step.py otherwise sets PASSIVE
else
  export OMP_WAIT_POLICY="$wait_policy"
fi
py=.venv/bin/python
[ -x "$py" ] || py=/usr/bin/python3
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg); OMP_WAIT_POLICY $wait_policy"
for b in $batches; do
  for o in $orders; do
    OMP_NUM_THREADS=$threads "$dartsc" bench examples/darts_cifar10.dartsc --batch "$b" --order "$o" --steps "$steps" --json
    "$py" bench/torch_step.py --space darts_cifar10 --batch "$b" --order "$o" --steps "$steps" --threads "$threads"
  done
done
for b in $fbatches; do
  for o in $orders; do
    OMP_NUM_THREADS=$threads "$dartsc" bench examples/fashion_mnist.dartsc --batch "$b" --order "$o" --steps "$steps" --json
    "$py" bench/torch_step.py --space fashion --in-c 1 --hw 28 --C 8 --layers 5 --batch "$b" --order "$o" \
      --steps "$steps" --threads "$threads"
  done
done
