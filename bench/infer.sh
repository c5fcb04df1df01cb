#!/usr/bin/env bash
# Single-thread inference latency of a trained run directory's network: the generated C
# (gcc -O3 -march=native) against onnxruntime (1 intra-op thread, all optimisations) on
# the same exported ONNX model, in one run.   bench/infer.sh [RUN_DIR] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/fashion_mnist}"
runs="${2:-50}"
tmp=$(mktemp -d)
./build/dartsc export "$run" --c "$tmp" --onnx "$tmp/model.onnx" --max-batch 32 >/dev/null 2>&1
cc -std=c99 -O3 -march=native -I"$tmp" bench/cgen_time.c "$tmp/model.c" -lm -o "$tmp/cgen_time"
echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(cc --version | head -1)"
echo "# binary: $(stat -c %s "$tmp/cgen_time") bytes"
for b in 1 32; do
  "$tmp/cgen_time" "$b" "$runs"
  OMP_NUM_THREADS=1 .venv/bin/python bench/ort_time.py "$tmp/model.onnx" "$b" "$runs"
done
rm -rf "$tmp"
