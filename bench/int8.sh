#!/usr/bin/env bash
# The int8 export of a trained run against its float export (issue #24's acceptance), in
# one run:
#  - accuracy on the first N Fashion-MNIST test images (default all 10,000) of the float C,
#    the int8 C (float entry point), the integer-only C, onnxruntime on the float ONNX and
#    on the QDQ ONNX, and how often the int8 C and onnxruntime's QDQ model agree
#    (tests/ref/check_int8.py; the C built by gcc -O2 -march=native);
#  - sizes: constant weight bytes and activation arena bytes as `dartsc export` prints
#    them, the object's text + data (`size`, gcc -O2, portable), the ONNX files;
#  - latency: float C and int8 C built by CC (default gcc) at -O2, -march=native and
#    portable (the compiler's default target), timed at batch 1 in ROUNDS interleaved
#    rounds (bench/cgen_time.c: thread-CPU median of RUNS inferences per run); the table
#    takes the median over rounds.
#
#   bench/int8.sh [RUN_DIR] [CALIBRATE] [N] [RUNS] [ROUNDS]
#       RUN_DIR defaults to runs/fashion_mnist, CALIBRATE (training images for the
#       activation ranges) to 256, N to 10000, RUNS to 200, ROUNDS to 3.
# DARTSC_BUILD (default build) is the build directory holding dartsc; CC the compiler.
# DARTSC_BASE, a second dartsc (another commit's, e.g. /work/main/build/dartsc), adds its
# int8 C ("before"), built and timed the same way, interleaved in the same rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/fashion_mnist}"
calib="${2:-256}"
n="${3:-10000}"
runs="${4:-200}"
rounds="${5:-3}"
build="${DARTSC_BUILD:-build}"
cc="${CC:-gcc}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export_as() { # KEY FLAGS...: dartsc export into $tmp/KEY, its messages into $tmp/KEY.log
  k=$1
  shift
  "$build/dartsc" export "$run" "$@" --c "$tmp/$k" --onnx "$tmp/$k.onnx" > "$tmp/$k.log" 2>&1 || { cat "$tmp/$k.log" >&2; exit 1; }
}
export_as f
export_as q --int8 --calibrate "$calib"
export_as i --int8 --integer-only --calibrate "$calib"
keys="f q"
if [ -n "${DARTSC_BASE:-}" ]; then
  "$DARTSC_BASE" export "$run" --int8 --calibrate "$calib" --c "$tmp/b" > "$tmp/b.log" 2>&1 || { cat "$tmp/b.log" >&2; exit 1; }
  for t in native portable; do
    fl="-std=c99 -O2"
    [ "$t" = native ] && fl="$fl -march=native"
    $cc $fl -I"$tmp/b" -c "$tmp/b/model.c" -o "$tmp/b/model-$t.o"
    $cc $fl -I"$tmp/b" bench/cgen_time.c "$tmp/b/model-$t.o" -lm -o "$tmp/b/time-$t"
  done
  keys="f q b"
fi
for k in f q i; do
  drv=tests/ref/cgen_predict.c
  [ "$k" = i ] && drv=tests/ref/cgen_predict_q.c
  gcc -std=c99 -O2 -march=native -I"$tmp/$k" "$drv" "$tmp/$k/model.c" -lm -o "$tmp/$k/predict"
  for t in native portable; do
    fl="-std=c99 -O2"
    [ "$t" = native ] && fl="$fl -march=native"
    $cc $fl -I"$tmp/$k" -c "$tmp/$k/model.c" -o "$tmp/$k/model-$t.o"
    [ "$k" = i ] || $cc $fl -I"$tmp/$k" bench/cgen_time.c "$tmp/$k/model-$t.o" -lm -o "$tmp/$k/time-$t"
  done
done
echo "# $(date -u +%FT%TZ) $run (calibrated on $calib images): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "$(nproc) cores; $($cc --version | head -1); onnxruntime $(.venv/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)');" \
     "load: $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$tmp/f.log" "$tmp/q.log" "$tmp/i.log" | sed 's/^/# /'
.venv/bin/python tests/ref/check_int8.py "$tmp" "$n" > "$tmp/acc.json"
for r in $(seq "$rounds"); do
  for k in $keys; do
    for t in native portable; do
      "$tmp/$k/time-$t" 1 "$runs" | sed "s/^{\"impl\":\"dartsc-c\"/{\"impl\":\"$k-$t\"/"
    done
  done
done > "$tmp/lines"
for k in f q i; do
  for t in native portable; do
    echo "$k-$t $(size "$tmp/$k/model-$t.o" | awk 'NR == 2 { print $1 + $2 }')"
  done
  echo "$k-onnx $(stat -c %s "$tmp/$k.onnx")"
done > "$tmp/sizes"
python3 - "$tmp" <<'PY'
import json, re, statistics, sys
d = sys.argv[1]
acc = json.load(open(d + "/acc.json"))
rows = [json.loads(l) for l in open(d + "/lines") if l.startswith("{")]
size = dict(l.split() for l in open(d + "/sizes"))
fp = {}
for k in "fqi":
    m = re.search(r"weights (\d+) bytes, activation arena (\d+) bytes", open("%s/%s.log" % (d, k)).read())
    fp[k] = (int(m.group(1)), int(m.group(2)))
ms = {}
for k in ("f", "q", "b"):
    for t in ("native", "portable"):
        v = [x["cpu_median_ms"] for x in rows if x["impl"] == "%s-%s" % (k, t)]
        if v:
            ms[k, t] = statistics.median(v)
pct = lambda v: "%.2f %%" % (100 * v)
n = acc["n"]
print("| %d test images | float C | int8 C | int8 integer-only C | onnxruntime, float ONNX | onnxruntime, QDQ ONNX |" % n)
print("|---|---|---|---|---|---|")
print("| accuracy | %s | %s (%+.2f points) | %s | %s | %s |" % (
    pct(acc["acc_c_float"]), pct(acc["acc_c_int8"]), 100 * (acc["acc_c_int8"] - acc["acc_c_float"]),
    pct(acc["acc_c_integer_only"]), pct(acc["acc_ort_float"]), pct(acc["acc_ort_qdq"])))
print("| predictions equal to the int8 C's | | | %d / %d | | %d / %d |" % (
    round(acc["agree_c_int8_integer_only"] * n), n, round(acc["agree_c_int8_ort_qdq"] * n), n))
print("| predictions equal to the float C's | | | | %d / %d | |" % (round(acc["agree_c_float_ort_float"] * n), n))
print("| weights (bytes, as export prints) | %d | %d | %d | | |" % (fp["f"][0], fp["q"][0], fp["i"][0]))
print("| activation arena (bytes, one sample) | %d | %d | %d | | |" % (fp["f"][1], fp["q"][1], fp["i"][1]))
for t in ("native", "portable"):
    print("| object text + data, -O2 %s (bytes) | %s | %s | %s | | |" % (
        "-march=native" if t == "native" else "portable", size["f-" + t], size["q-" + t], size["i-" + t]))
print("| ONNX file (bytes) | | | | %s | %s |" % (size["f-onnx"], size["q-onnx"]))
for t in ("native", "portable"):
    print("| batch 1, -O2 %s (ms, thread CPU) | %.3f | %.3f (%.1f×) | | | |" % (
        "-march=native" if t == "native" else "portable", ms["f", t], ms["q", t], ms["q", t] / ms["f", t]))
for t in ("native", "portable"):
    if ("b", t) in ms:
        print("| batch 1, -O2 %s, int8 C of DARTSC_BASE (ms, thread CPU) | | %.3f (%.1f×) | | | |" % (
            "-march=native" if t == "native" else "portable", ms["b", t], ms["b", t] / ms["f", t]))
PY
