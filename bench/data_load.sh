#!/usr/bin/env bash
# Load speed of the user data sources (docs/BENCHMARKS.md, "Data loading"): Fashion-MNIST's
# 60,000 training and 10,000 test images written once as a PNG folder, a JPEG folder and
# NumPy arrays (build/data_load make-*), then each loaded by dartsc's loaders (decoding,
# conversion and resizing, OpenMP over files) at the native 1x28x28, and the folders also
# resized to 1x32x32 and converted to 3x32x32. Prints JSON lines.
#   bench/data_load.sh [WORK_DIR]      (default /tmp/dartsc-data-bench; THREADS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/dartsc-data-bench}"
export OMP_NUM_THREADS="${THREADS:-2}" OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
bin=./build/data_load
[ -x "$bin" ] || { echo "build first: cmake --build build --target data_load" >&2; exit 1; }
mkdir -p "$work"
for kind in png jpg; do
  [ -d "$work/$kind/train" ] || { echo "writing $work/$kind (70,000 files)" >&2; "$bin" make-images "$work/$kind" "$kind"; }
done
[ -f "$work/npy/x_train.npy" ] || "$bin" make-npy "$work/npy"
echo "{\"threads\": $OMP_NUM_THREADS, \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\", \"date\": \"$(date -u +%F)\"}"
sync
for kind in png jpg; do
  for input in 1x28x28 1x32x32 3x32x32; do
    "$bin" load images "$work/$kind" "$input" | sed "s/\"source\": \"images\"/\"source\": \"images-$kind\"/"
  done
done
"$bin" load npy "$work/npy" 1x28x28
