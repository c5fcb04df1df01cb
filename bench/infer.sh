#!/usr/bin/env bash
# Single-thread inference latency of a run directory's network, in one run: the generated
# C (gcc -O3 -march=native), onnxruntime (1 intra-op thread, all optimisations) on the
# exported ONNX model, and PyTorch (the reference model.py network, eval mode, 1 thread),
# all three with the same weights and inputs, at batch 1 and 32. Runs are interleaved
# (C, onnxruntime, PyTorch, repeated ROUNDS times) and each prints medians of wall and
# thread CPU time; the summary takes the median over rounds of the CPU-time medians (on a
# shared machine the wall time mostly measures the other jobs) and prints ratios, binary
# size and peak memory.
#
#   bench/infer.sh [RUN_DIR] [RUNS] [ROUNDS]       RUN_DIR defaults to runs/fashion_mnist;
#   bench/infer.sh darts_v2 [RUNS] [ROUNDS]        the DARTS_V2 network at search size
#                                                  (8 cells, C = 16, 32x32, random weights:
#                                                  bench/darts_v2_run.c)
#   bench/infer.sh --matrix [RUN_DIR|darts_v2] [RUNS] [ROUNDS]
#       the compiler matrix instead: the generated C built by gcc and clang at -O2 and -O3,
#       each with -march=native and portable (the compiler's default target), timed at
#       batch 1 and 32 in ROUNDS interleaved rounds with onnxruntime; no PyTorch. Prints
#       a markdown table of ms per image (median over rounds of each run's thread-CPU
#       median) and the ratio to onnxruntime. With DARTSC_BASE=path/to/an/older/dartsc the older
#       generator's C is built and timed in the same rounds (rows "base ..."), for before
#       and after comparisons on a noisy machine. MATRIX_CCS (default "gcc clang") and
#       MATRIX_OPTS (default "O2 O3") choose the rows (each build of a large network's C
#       takes minutes on a loaded 2-core machine).
# DARTSC_BUILD (default build) is the build directory holding dartsc and darts_v2_run.
set -euo pipefail
cd "$(dirname "$0")/.."
matrix() {
  run="${1:-runs/fashion_mnist}"
  runs="${2:-200}"
  rounds="${3:-3}"
  build="${DARTSC_BUILD:-build}"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if [ "$run" = darts_v2 ]; then
    "$build/darts_v2_run" "$tmp/run" >/dev/null
    run="$tmp/run"
  fi
  gens="new"
  "$build/dartsc" export "$run" --c "$tmp/new" --onnx "$tmp/model.onnx" --max-batch 32 >/dev/null 2>&1
  if [ -n "${DARTSC_BASE:-}" ]; then
    gens="base new"
    "$DARTSC_BASE" export "$run" --c "$tmp/base" --max-batch 32 >/dev/null 2>&1
  fi
  variants=""
  for g in $gens; do
    for cc in ${MATRIX_CCS:-gcc clang}; do
      for o in ${MATRIX_OPTS:-O2 O3}; do
        for t in native portable; do
          v="$g-$cc-$o-$t"
          fl="-std=c99 -$o"
          [ "$t" = native ] && fl="$fl -march=native"
          $cc $fl -I"$tmp/$g" bench/cgen_time.c "$tmp/$g/model.c" -lm -o "$tmp/$v"
          variants="$variants $v"
        done
      done
    done
  done
  echo "# $(date -u +%FT%TZ) $run: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores;" \
       "$(gcc --version | head -1); $(clang --version | head -1); load: $(cut -d' ' -f1-3 /proc/loadavg)"
  for b in 1 32; do
    n=$runs
    [ "$b" = 32 ] && n=$(( (runs + 7) / 8 ))
    for r in $(seq "$rounds"); do
      OMP_NUM_THREADS=1 .venv/bin/python bench/ort_time.py "$tmp/model.onnx" "$b" "$n"
      for v in $variants; do
        "$tmp/$v" "$b" "$n" | sed "s/^{\"impl\":\"dartsc-c\"/{\"impl\":\"$v\"/"
      done
    done
  done > "$tmp/lines"
  python3 - "$tmp/lines" $variants <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("# medians over rounds (ms per image, thread CPU time); ratio = x / onnxruntime")
print("| generator | compiler | flags | batch 1 | x ort | batch 32 | x ort |")
print("|---|---|---|---|---|---|---|")
med = {}
for impl in ["onnxruntime"] + sys.argv[2:]:
    for b in (1, 32):
        r = [x["cpu_median_ms"] for x in rows if x["impl"] == impl and x["batch"] == b]
        med[impl, b] = statistics.median(r) / b
o1, o32 = med["onnxruntime", 1], med["onnxruntime", 32]
print("| onnxruntime | | 1 thread | %.3f | | %.3f | |" % (o1, o32))
for v in sys.argv[2:]:
    g, cc, o, t = v.split("-")
    print("| %s | %s | -%s %s | %.3f | %.2f | %.3f | %.2f |" % (g, cc, o, "-march=native" if t == "native" else "(portable)",
          med[v, 1], med[v, 1] / o1, med[v, 32], med[v, 32] / o32))
PY
}
if [ "${1:-}" = --matrix ]; then
  shift
  matrix "$@"
  exit 0
fi
run="${1:-runs/fashion_mnist}"
runs="${2:-200}"
rounds="${3:-3}"
build="${DARTSC_BUILD:-build}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$run" = darts_v2 ]; then
  "$build/darts_v2_run" "$tmp/run" >/dev/null
  run="$tmp/run"
fi
"$build/dartsc" export "$run" --c "$tmp" --onnx "$tmp/model.onnx" --max-batch 32 >/dev/null 2>&1
cc -std=c99 -O3 -march=native -I"$tmp" bench/cgen_time.c "$tmp/model.c" -lm -o "$tmp/cgen_time"
hw=$(sed -n 's/^#define model_IN_H \([0-9]*\).*/\1/p' "$tmp/model.h")
echo "# $(date -u +%FT%TZ) $run: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores," \
     "$(cc --version | head -1); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# generated C binary (bench driver + model): $(stat -c %s "$tmp/cgen_time") bytes; model.c $(stat -c %s "$tmp/model.c") bytes"
for b in 1 32; do
  n=$runs
  [ "$b" = 32 ] && n=$(( (runs + 7) / 8 ))
  for r in $(seq "$rounds"); do
    "$tmp/cgen_time" "$b" "$n"
    OMP_NUM_THREADS=1 .venv/bin/python bench/ort_time.py "$tmp/model.onnx" "$b" "$n"
    OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch_infer.py "$run" "$hw" "$b" "$(( (n + 3) / 4 ))"
  done
done | tee "$tmp/lines"
python3 - "$tmp/lines" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("# medians over rounds (ms, thread CPU time; wall in brackets); ratio = x / onnxruntime")
for b in (1, 32):
    med = {}
    for impl in ("dartsc-c", "onnxruntime", "pytorch"):
        r = [x for x in rows if x["impl"] == impl and x["batch"] == b]
        med[impl] = (statistics.median(x["cpu_median_ms"] for x in r), statistics.median(x["median_ms"] for x in r),
                     max(x.get("maxrss_kb", 0) for x in r), r[0].get("arena_bytes"))
    o = med["onnxruntime"][0]
    print("batch %2d: " % b + "  ".join("%s %.3f [%.3f] (x%.2f)" % (k, v[0], v[1], v[0] / o) for k, v in med.items()))
    c = med["dartsc-c"]
    print("          peak RSS: generated C %d KiB (arena %d bytes), onnxruntime %d KiB, pytorch %d KiB" %
          (c[2], c[3], med["onnxruntime"][2], med["pytorch"][2]))
EOF
