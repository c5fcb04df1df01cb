#!/usr/bin/env bash
# Side-by-side CPU benchmark of one DARTS search step: dartsc vs PyTorch (Debian's
# python3-torch) on the same supernet, same batch, same thread count, in one run.
#   bench/run.sh [BATCHES] [ORDERS]      e.g. bench/run.sh "16 64" "1 2"
# Prints JSON lines; docs/BENCHMARKS.md records the numbers with machine and date.
set -euo pipefail
cd "$(dirname "$0")/.."
batches="${1:-16}"
orders="${2:-1 2}"
threads="${THREADS:-2}"
steps="${STEPS:-5}"
py=.venv/bin/python
[ -x "$py" ] || py=/usr/bin/python3
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for b in $batches; do
  for o in $orders; do
    OMP_NUM_THREADS=$threads ./build/dartsc bench examples/darts_cifar10.dartsc --batch "$b" --order "$o" --steps "$steps" --json
    "$py" bench/torch_step.py --batch "$b" --order "$o" --steps "$steps" --threads "$threads"
  done
done
for o in $orders; do
  OMP_NUM_THREADS=$threads ./build/dartsc bench examples/fashion_mnist.dartsc --order "$o" --steps "$steps" --json
  "$py" bench/torch_step.py --in-c 1 --hw 28 --C 8 --layers 5 --batch 64 --order "$o" --steps "$steps" --threads "$threads"
done
