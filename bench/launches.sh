#!/usr/bin/env bash
# launches.sh — what one recorded first-order DARTS search step issues on the CUDA backend,
# counted exactly on the CUDA emulator (tests/cuemu, CUEMU_STATS): kernel launches by
# kernel, cuBLAS/cuDNN calls, copies and memsets, for the default and the opt-in switches
# that change them. A launch count is a property of the host code, not of the device, so
# no GPU is needed; the device's time per launch is what bench/gpu.sh measures.
#
#   bench/launches.sh [OUT_DIR]      (needs build-emu: cmake -DDARTSC_CUDA_EMU=ON, target dartsc)
#
# The space: examples/darts_cifar10.dartsc's supernet (8 cells, C = 16, 8 candidates) on
# 8x8 images at batch 2 (the counts do not depend on the batch or the image size; the
# emulator runs every GPU thread as a fiber, so a step at 32x32, batch 64 would take
# hours), random arrays as its data. One recorded step = a run of 2 warm-up + 2 steps
# minus a run of 2 warm-up + 1 step (the step is recorded whole from the third on). About
# 2 minutes per run on 2 cores; 16 runs.
set -euo pipefail
{ # read whole before it runs: editing this file during a run (minutes of emulation) changes nothing
cd "$(dirname "$0")/.."
out=${1:-bench/out/launches}
dartsc=${DARTSC:-./build-emu/dartsc}
py=${PY:-.venv/bin/python}
[ -x "$dartsc" ] || { echo "launches.sh: $dartsc missing (build build-emu with -DDARTSC_CUDA_EMU=ON)" >&2; exit 1; }
mkdir -p "$out/data"
out=$(cd "$out" && pwd)
"$py" - "$out/data" <<'PY'
import sys, numpy as np
r = np.random.default_rng(0)
for s, n in (("train", 64), ("test", 16)):
    np.save(f"{sys.argv[1]}/x_{s}.npy", r.random((n, 3, 8, 8)).astype(np.float32))
    np.save(f"{sys.argv[1]}/y_{s}.npy", r.integers(0, 10, n).astype(np.int64))
PY
sed -e "s#data cifar10 \"data/cifar-10-batches-bin\"#data npy \"$out/data\"#" \
    -e 's#^\(\s*\)input 3x32x32#\1input 3x8x8\n\1mean [0.5, 0.5, 0.5]\n\1std [0.25, 0.25, 0.25]#' \
    -e 's/aux_weight 0.4/aux_weight 0/' examples/darts_cifar10.dartsc >"$out/space.dartsc"
variants=("" "DARTSC_CUDA_OWN_1X1=1" "DARTSC_CUDA_BATCH=1" "DARTSC_CUDA_BATCH=1 DARTSC_CUDA_OWN_1X1=1"
          "DARTSC_CUDA_BATCH=1 DARTSC_CUDA_OWN_1X1=1 DARTSC_CUDA_ONE_LAUNCH=1"
          "DARTSC_CUDA_BATCH=1 DARTSC_CUDA_BATCH_CUBLAS=1"
          "DARTSC_CUDA_BATCH=1 DARTSC_CUDA_BATCH_CUBLAS=1 DARTSC_CUDA_ONE_LAUNCH=1" "DARTSC_NO_SHARE=1")
# LAUNCH_VARIANTS: a ';'-separated subset to count instead ("default" for no switch);
# LAUNCH_SUPERNET: pc-darts or fair-darts to count that supernet's step (dartsc bench --supernet);
# LAUNCH_ORDER=2: the second-order step (default 1);
# LAUNCH_RETRAIN=1: a retraining step instead (build-emu/retrain_step: DARTS_V2's evaluation
# network at the space's train block, C 36, 20 cells, drop path 0.2, without the auxiliary
# head, which 8x8 images are too small for)
if [ -n "${LAUNCH_VARIANTS:-}" ]; then
    IFS=';' read -r -a variants <<<"$LAUNCH_VARIANTS"
    for i in "${!variants[@]}"; do [ "${variants[$i]}" = default ] && variants[$i]=""; done
fi
for v in "${variants[@]}"; do
    tag=$(printf '%s' "${v:-default}" | tr -c 'A-Za-z0-9_' '_')
    for st in 1 2; do
        if [ "${LAUNCH_RETRAIN:-0}" = 1 ]; then
            env $v CUEMU_STATS="$out/$tag.$st.txt" nice "${RETRAIN_STEP:-./build-emu/retrain_step}" "$out/space.dartsc" \
                --device cuda --batch 2 --steps $st --warmup 2 >"$out/$tag.$st.log" 2>&1
        else
            env $v CUEMU_STATS="$out/$tag.$st.txt" nice "$dartsc" bench "$out/space.dartsc" --device cuda --batch 2 \
                --order "${LAUNCH_ORDER:-1}" --steps $st --warmup 2 --supernet "${LAUNCH_SUPERNET:-darts}" >"$out/$tag.$st.log" 2>&1
        fi
    done
    echo "== ${v:-default} ($(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%F))"
    python3 tests/cuemu/stats.py "$out/$tag.2.txt" --minus "$out/$tag.1.txt" | tee "$out/$tag.table.txt" | tail -11
done
exit
}
