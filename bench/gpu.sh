#!/usr/bin/env bash
# gpu.sh — dartsc against PyTorch eager on one GPU, side by side in one run: the DARTS
# CIFAR-10 supernet (8 cells, C = 16) at one batch size, first and second order, median
# of STEPS steps after WARMUP warm-up steps each; A/B rows with one optimisation off;
# retraining steps of DARTS_V2's network; dartsc's per-op device profile of one
# first-order run; every kernel alone. Run by scripts/device-check on the lent GPU machine.
#
#   bench/gpu.sh [BATCH] [OUT_DIR]
#   env: DARTSC (the binary, default ./build/dartsc), PY (python with torch, default
#        python3), STEPS (10), WARMUP (3), ORDERS ("1 2"), SKIP_PROFILE (1: no profile,
#        no kernel table), AB (all, the default: every A/B row; new: only the rows of the
#        switches not yet measured on a GPU (launch reductions, the batch norms' shared
#        statistics and summed backwards, step graphs; the likeliest defaults first), for a
#        short device call; the main pairs, the repeat and retraining run either way)
#
# Writes OUT_DIR/gpu.jsonl (one JSON line per run: dartsc's `bench --json`, torch_step.py's,
# retraining steps of both, the moonshot's paper-schedule rows), OUT_DIR/gpu-profile.txt (dartsc's per-op device times;
# gpu-profile-batched.txt: with every launch reduction, batches timed as issued) and
# OUT_DIR/gpu-kernels.txt (bench/cuda_kernels: each kernel against its CPU twin, timed),
# and prints a table: seconds per step, ratio PyTorch/dartsc (> 1: dartsc faster), peak
# device memory of each side's allocations.
set -uo pipefail
cd "$(dirname "$0")/.."
batch=${1:-64}
out=${2:-bench/out}
dartsc=${DARTSC:-./build/dartsc}
py=${PY:-python3}
steps=${STEPS:-10}
warmup=${WARMUP:-3}
orders=${ORDERS:-1 2}
mkdir -p "$out"
j=$out/gpu.jsonl
: >"$j"
echo "# $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1); commit $(cat .devbundle/COMMIT 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo '?')" | tee -a "$out/gpu-header.txt"
for o in $orders; do
    timeout 300 "$dartsc" bench examples/darts_cifar10.dartsc --device cuda --batch "$batch" --order "$o" \
        --steps "$steps" --warmup "$warmup" --json >>"$j" || echo "dartsc order $o failed (rc $?)"
    timeout 300 "$py" bench/torch_step.py --device cuda --space darts_cifar10 --batch "$batch" --order "$o" \
        --steps "$steps" --warmup "$warmup" >>"$j" || echo "pytorch order $o failed (rc $?)"
done
# a second first-order pair in the other order (both sides drift between runs)
timeout 300 "$py" bench/torch_step.py --device cuda --space darts_cifar10 --batch "$batch" --order 1 \
    --steps "$steps" --warmup "$warmup" | sed 's/"impl": "pytorch"/"impl": "pytorch repeat"/' >>"$j" || echo "pytorch repeat failed"
timeout 300 "$dartsc" bench examples/darts_cifar10.dartsc --device cuda --batch "$batch" --order 1 \
    --steps "$steps" --warmup "$warmup" --json | sed 's/"impl":"dartsc"/"impl":"dartsc repeat"/' >>"$j" || echo "dartsc repeat failed"
# autotuning (DARTSC_AUTOTUNE=1): the run times every bit-identical variant (batched launches,
# one-launch reductions, each on or off) on its first steps and keeps the fastest; its
# JSON line names the variant and each variant's median (one run per order; first of the
# A/B rows: it measures four variants at once, should the call run out of time later)
for o in $orders; do
    DARTSC_AUTOTUNE=1 timeout 300 "$dartsc" bench examples/darts_cifar10.dartsc --device cuda --batch "$batch" \
        --order "$o" --steps "$steps" --warmup "$warmup" --json \
        | sed 's/"impl":"dartsc"/"impl":"dartsc DARTSC_AUTOTUNE=1"/' >>"$j" || echo "order $o autotuned failed"
done

# issue #19's moonshot: the Fashion-MNIST demo supernet on the DARTS paper's search schedule
# (examples/fashion_mnist_paper.dartsc: 50 epochs of 469 second-order steps at batch 64, then
# 12 epochs of retraining over 60,000 images) in under 15 minutes on one GPU. Its steps timed
# here (default, autotuned, autotuned with every launch reduction), PyTorch's beside them
# (the same supernet: 1x28x28, C 8, 5 cells), its retraining steps (DARTS_V2 at the space's
# C 16, 5 cells, batch 64); the table projects the schedule from the medians (steps only:
# the epochs' evaluations and the first steps' recordings are left out)
fm=examples/fashion_mnist_paper.dartsc
for v in "" "DARTSC_AUTOTUNE=1" "DARTSC_AUTOTUNE=1 DARTSC_CUDA_BATCH=1 DARTSC_CUDA_BATCH_CUBLAS=1"; do
    env $v timeout 200 "$dartsc" bench "$fm" --device cuda --batch 64 --order 2 --steps "$steps" --warmup "$warmup" \
        --json | sed "s/\"impl\":\"dartsc\"/\"impl\":\"paper dartsc${v:+ $v}\"/" >>"$j" || echo "paper schedule ($v) failed"
done
timeout 200 "$py" bench/torch_step.py --device cuda --space fashion_mnist_paper --in-c 1 --hw 28 --C 8 --layers 5 \
    --batch 64 --order 2 --steps "$steps" --warmup "$warmup" | sed 's/"impl": "pytorch"/"impl": "paper pytorch"/' >>"$j" \
    || echo "paper schedule pytorch failed"
timeout 200 "${RETRAIN_STEP:-$(dirname "$dartsc")/retrain_step}" "$fm" --device cuda --steps "$steps" --warmup "$warmup" \
    --json | sed 's/"impl":"dartsc"/"impl":"paper dartsc"/' >>"$j" || echo "paper schedule retraining failed"
timeout 200 "$py" bench/torch_step.py --retrain --device cuda --space fashion_mnist_paper --in-c 1 --hw 28 --C 16 \
    --layers 5 --batch 64 --aux 0 --drop-path 0 --steps "$steps" --warmup "$warmup" \
    | sed 's/"impl": "pytorch"/"impl": "paper pytorch"/' >>"$j" || echo "paper schedule pytorch retraining failed"

if [[ ${AB:-all} == all ]]; then
# the same first-order step with one switch at a time (what each optimisation gains: graphs,
# fusion, uploads staged without waiting), and with the recorded passes on 1 (no
# concurrency), 4 and 16 lanes instead of 8
for v in DARTSC_NO_GRAPHS=1 DARTSC_NO_FUSION=1 DARTSC_CUDA_SYNC_UPLOADS=1 DARTSC_CUDA_LANES=1 DARTSC_CUDA_LANES=4 DARTSC_CUDA_LANES=16; do
    env "$v" timeout 120 "$dartsc" bench examples/darts_cifar10.dartsc --device cuda --batch "$batch" --order 1 \
        --steps "$steps" --warmup "$warmup" --json | sed "s/\"impl\":\"dartsc\"/\"impl\":\"dartsc $v\"/" >>"$j" \
        || echo "$v run failed"
done
for v in DARTSC_CUDA_LANES=1 DARTSC_CUDA_SYNC_UPLOADS=1; do
    env "$v" timeout 300 "$dartsc" bench examples/darts_cifar10.dartsc --device cuda --batch "$batch" --order 2 \
        --steps "$steps" --warmup "$warmup" --json | sed "s/\"impl\":\"dartsc\"/\"impl\":\"dartsc $v\"/" >>"$j" \
        || echo "order 2 with $v failed"
done
fi
# One A/B run: ab ORDER "SWITCH=1 ...": dartsc's step with those switches set, its JSON line
# named for them.
ab() {
    env $2 timeout 300 "$dartsc" bench examples/darts_cifar10.dartsc --device cuda --batch "$batch" \
        --order "$1" --steps "$steps" --warmup "$warmup" --json \
        | sed "s/\"impl\":\"dartsc\"/\"impl\":\"dartsc $2\"/" >>"$j" || echo "order $1 with $2 failed"
}
# The opt-in switches not yet measured on a GPU, the likeliest defaults first (a call cut
# short by its time loses the last rows; ~50 runs of a few seconds each do not all fit
# device-check's limit of 430 s for this script): both orders, against the default rows
# above, of
# - the reductions finished by their last block (DARTSC_CUDA_ONE_LAUNCH=1);
# - every launch reduction at once (R: independent same-shaped nodes of a recorded pass
#   batched into one launch per kernel, DARTSC_CUDA_BATCH=1; the cuBLAS 1x1s batched, one
#   pointer-array GEMM per group, DARTSC_CUDA_BATCH_CUBLAS=1; and the one-launch
#   reductions: the fewest launches, docs/BENCHMARKS.md "Launches per search step"), then
#   with the pools writing their batch norms' statistics and running their forwards
#   (DARTSC_POOL_BN_STATS=1: no statistics launch or read of a pooled tensor left), then
#   with the batch norms of one pooled tensor running one backward on the sum of their
#   output gradients (DARTSC_SUM_BN_GRADS=1: 10 backwards a cell where there were 28;
#   gradients equal to rounding, not bit for bit);
# - those two alone and together, and the batch norms of one tensor sharing the first
#   one's statistics (DARTSC_SHARE_BN_STATS=1: 28 batch norms a cell read 10 tensors)
R="DARTSC_CUDA_BATCH=1 DARTSC_CUDA_BATCH_CUBLAS=1 DARTSC_CUDA_ONE_LAUNCH=1"
for o in $orders; do
    for v in "DARTSC_CUDA_ONE_LAUNCH=1" "$R" "$R DARTSC_POOL_BN_STATS=1" "$R DARTSC_POOL_BN_STATS=1 DARTSC_SUM_BN_GRADS=1" \
             "DARTSC_POOL_BN_STATS=1" "DARTSC_SUM_BN_GRADS=1" "DARTSC_POOL_BN_STATS=1 DARTSC_SUM_BN_GRADS=1" \
             "DARTSC_SHARE_BN_STATS=1"; do
        ab "$o" "$v"
    done
done

# retraining: DARTS_V2's evaluation network at the paper's size (C 36, 20 cells, batch 96,
# auxiliary head 0.4, drop path 0.2; with drop path 0 too: no random masks, so dartsc
# replays its pass as a CUDA graph)
rs=${RETRAIN_STEP:-$(dirname "$dartsc")/retrain_step}
for dp in 0.2 0; do
    timeout 200 "$rs" examples/darts_cifar10.dartsc --device cuda --steps "$steps" --warmup "$warmup" --drop-path "$dp" \
        --json >>"$j" || echo "retrain_step (drop path $dp) failed"
    timeout 300 "$py" bench/torch_step.py --retrain --device cuda --space darts_cifar10 --C 36 --layers 20 --batch 96 \
        --aux 0.4 --drop-path "$dp" --steps "$steps" --warmup "$warmup" >>"$j" || echo "pytorch retrain failed"
done
# retraining with every launch reduction (this session's batched drop paths; the retraining
# step batched nothing before), and autotuned (batching and one-launch reductions timed)
for v in "DARTSC_CUDA_BATCH=1 DARTSC_CUDA_BATCH_CUBLAS=1 DARTSC_CUDA_ONE_LAUNCH=1" "DARTSC_AUTOTUNE=1"; do
    env $v timeout 200 "$rs" examples/darts_cifar10.dartsc --device cuda --steps "$steps" --warmup "$warmup" \
        --drop-path 0.2 --json | sed "s/\"impl\":\"dartsc\"/\"impl\":\"dartsc $v\"/" >>"$j" || echo "retrain ($v) failed"
done
# drop path 0.2 on one lane (what the lanes gain in retraining)
[[ ${AB:-all} == all ]] && { DARTSC_CUDA_LANES=1 timeout 200 "$rs" examples/darts_cifar10.dartsc --device cuda --steps "$steps" \
    --warmup "$warmup" --json | sed 's/"impl":"dartsc"/"impl":"dartsc-1-lane"/' >>"$j" || echo "retrain on one lane failed"; }
# the batched launches' other combinations (DARTSC_CUDA_BATCH=1 alone; with the own 1x1
# kernels, DARTSC_CUDA_OWN_1X1=1, whose 1x1s batch too: alone they were slower than cuBLAS
# at 50b5218; and with the cuBLAS 1x1s batched), both orders
for o in $orders; do
    for v in "DARTSC_CUDA_BATCH=1" "DARTSC_CUDA_BATCH=1 DARTSC_CUDA_OWN_1X1=1" \
             "DARTSC_CUDA_BATCH=1 DARTSC_CUDA_OWN_1X1=1 DARTSC_CUDA_ONE_LAUNCH=1" \
             "DARTSC_CUDA_BATCH=1 DARTSC_CUDA_BATCH_CUBLAS=1"; do
        ab "$o" "$v"
    done
done
# dartsc's per-op device profile (eager, one lane) and, at the end, every kernel alone against
# its CPU twin (bench/cuda_kernels.cu); SKIP_PROFILE=1 leaves both out
if [[ ${SKIP_PROFILE:-0} != 1 ]]; then
    timeout 200 "$dartsc" bench examples/darts_cifar10.dartsc --device cuda --batch "$batch" --order 1 --steps 3 \
        --warmup 2 --profile >"$out/gpu-profile.txt" 2>&1 || echo "profile run failed (rc $?)"
    # the same with every launch reduction, the batches timed as issued (DARTSC_SCHEDULE_EAGER:
    # the passes through the schedule on one lane, each batch one timed call): where the
    # batched step's device time goes, kernel family by family
    DARTSC_CUDA_BATCH=1 DARTSC_CUDA_BATCH_CUBLAS=1 DARTSC_CUDA_ONE_LAUNCH=1 DARTSC_SCHEDULE_EAGER=1 timeout 200 \
        "$dartsc" bench examples/darts_cifar10.dartsc --device cuda --batch "$batch" --order 1 --steps 3 --warmup 2 \
        --profile >"$out/gpu-profile-batched.txt" 2>&1 || echo "batched profile run failed (rc $?)"
fi
# rows of lower priority last, so that a call cut short by its time loses only these:
# the supernet with one copy of each pool, FactorizedReduce ReLU and shift per edge
# (DARTSC_NO_SHARE=1, PyTorch's structure) against the default's one per cell and state
DARTSC_NO_SHARE=1 timeout 300 "$dartsc" bench examples/darts_cifar10.dartsc --device cuda --batch "$batch" \
    --order 1 --steps "$steps" --warmup "$warmup" --json \
    | sed 's/"impl":"dartsc"/"impl":"dartsc DARTSC_NO_SHARE=1"/' >>"$j" || echo "order 1 without sharing failed"
# the sep_convs' middle batch norms applied (DARTSC_NO_BN_INTO_CONV=1) against deferred into
# the depthwise convolutions after their ReLUs (the default): time and peak device memory
DARTSC_NO_BN_INTO_CONV=1 timeout 300 "$dartsc" bench examples/darts_cifar10.dartsc --device cuda --batch "$batch" \
    --order 1 --steps "$steps" --warmup "$warmup" --json \
    | sed 's/"impl":"dartsc"/"impl":"dartsc DARTSC_NO_BN_INTO_CONV=1"/' >>"$j" || echo "order 1 without BN into conv failed"
# the blocked depthwise filter gradient one output a thread at a time (DARTSC_CUDA_DW_FILTER_U1=1:
# fewer registers, more blocks a multiprocessor) against the default's 4 (3x3) or 2 (5x5)
# outputs' loads in flight; gpu-kernels.txt's dwu1 rows time the kernel alone
DARTSC_CUDA_DW_FILTER_U1=1 timeout 300 "$dartsc" bench examples/darts_cifar10.dartsc --device cuda --batch "$batch" \
    --order 1 --steps "$steps" --warmup "$warmup" --json \
    | sed 's/"impl":"dartsc"/"impl":"dartsc DARTSC_CUDA_DW_FILTER_U1=1"/' >>"$j" || echo "order 1 with one output a thread failed"

# whole steps recorded as one graph (rt_step_run) against the per-pass recordings they
# replace: both orders and retraining (drop path 0.2) with DARTSC_NO_STEP_GRAPHS=1
for o in 1 2; do
    DARTSC_NO_STEP_GRAPHS=1 timeout 300 "$dartsc" bench examples/darts_cifar10.dartsc --device cuda --batch "$batch" \
        --order "$o" --steps "$steps" --warmup "$warmup" --json \
        | sed 's/"impl":"dartsc"/"impl":"dartsc DARTSC_NO_STEP_GRAPHS=1"/' >>"$j" || echo "order $o without step graphs failed"
done
# the next step's batches drawn on the host while a step computes (prefetch, the default)
# against drawn between steps (DARTSC_NO_PREFETCH=1), both orders; each row's host_batch_s
# is the host's time drawing a step's batches (search/cnn.c does the same)
for o in 1 2; do
    DARTSC_NO_PREFETCH=1 timeout 300 "$dartsc" bench examples/darts_cifar10.dartsc --device cuda --batch "$batch" \
        --order "$o" --steps "$steps" --warmup "$warmup" --json \
        | sed 's/"impl":"dartsc"/"impl":"dartsc DARTSC_NO_PREFETCH=1"/' >>"$j" || echo "order $o without prefetch failed"
done
DARTSC_NO_STEP_GRAPHS=1 timeout 200 "${RETRAIN_STEP:-$(dirname "$dartsc")/retrain_step}" examples/darts_cifar10.dartsc \
    --device cuda --steps "$steps" --warmup "$warmup" --drop-path 0.2 --json \
    | sed 's/"impl":"dartsc"/"impl":"dartsc-no-step-graphs"/' >>"$j" || echo "retrain without step graphs failed"
if [[ ${SKIP_PROFILE:-0} != 1 ]]; then
    ck=${CUDA_KERNELS:-$(dirname "$dartsc")/cuda_kernels}
    [ -x "$ck" ] && timeout 120 "$ck" 30 >"$out/gpu-kernels.txt" 2>&1 || echo "cuda_kernels failed or missing (rc $?)"
fi
cat "$j"
"$py" - "$j" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
# the moonshot's rows (impl "paper ..."): the paper schedule projected from the step medians
paper = [r for r in rows if r["impl"].startswith("paper ")]
rows = [r for r in rows if not r["impl"].startswith("paper ")]
SEARCH_STEPS, RETRAIN_IMAGES = 50 * 469, 12 * 60000
pr = {r["impl"][6:].split(" ")[0]: r for r in paper if r.get("what") == "retrain"}
pt = next((r["median_s"] for r in paper if r["impl"] == "paper pytorch" and r.get("what") != "retrain"), None)
for r in paper:
    if r.get("what") == "retrain":
        print(f"paper schedule retraining, {r['impl'][6:]}: {r['median_s']:.4f} s/step, {r['images_per_s']} images/s, "
              f"12 epochs in {RETRAIN_IMAGES / r['images_per_s'] / 60:.1f} min")
        continue
    side = r["impl"][6:].split(" ")[0]
    rt = pr.get(side)
    total = SEARCH_STEPS * r["median_s"] + (RETRAIN_IMAGES / rt["images_per_s"] if rt else float("nan"))
    print(f"paper schedule search, {r['impl'][6:]}: {r['median_s']:.4f} s/step (order {r['order']}), 50 epochs in "
          f"{SEARCH_STEPS * r['median_s'] / 60:.1f} min; with the retraining {total / 60:.1f} min (target 15)"
          + (f"; {pt / r['median_s']:.2f}x PyTorch's step" if pt and side == "dartsc" else "")
          + (f"; chose {r['variant']}" if "variant" in r else ""))
print(f"{'order':>5} {'dartsc s/step':>14} {'pytorch s/step':>15} {'ratio':>7} {'dartsc dev MiB':>15} {'pytorch dev MiB':>16}")
for r in rows:
    if r.get("what") == "retrain":
        print(f"retrain {r['impl']:>8} drop path {r['drop_path']}: {r['median_s']:.4f} s/step, {r['images_per_s']} images/s")
        continue
    if r["impl"].endswith("repeat"):
        print(f"order {r['order']} {r['impl']}: {r['median_s']:.4f} s/step")
    if r["impl"].startswith("dartsc DARTSC_"):
        base = next((b for b in rows if b["impl"] == "dartsc" and b.get("order") == r["order"]), None)
        print(f"order {r['order']} with {r['impl'][7:]}: {r['median_s']:.4f} s/step"
              + (f" ({base['median_s'] / r['median_s']:.3f}x the default's speed)" if base else "")
              + f", {r.get('peak_device_alloc_mb', -1)} MiB"
              + (f"; chose {r['variant']} ({r['variant_medians']} s/step while tuning)" if "variant" in r else ""))
    if r["impl"] in ("dartsc", "dartsc DARTSC_NO_PREFETCH=1") and "host_batch_s" in r:
        print(f"order {r['order']} {r['impl']}: {r['host_batch_s'] * 1e3:.3f} ms a step drawing batches on the host "
              f"({'while the step before computes' if r.get('prefetch') else 'between steps'})")
rows = [r for r in rows if r.get("what") != "retrain"]
for r in rows:
    if r["impl"] == "dartsc" and r.get("device_step_s", -1) > 0:
        ds, dp = r["device_step_s"], r["device_in_passes_s"]
        print(f"order {r['order']}: device time per step {ds:.4f} s, {dp:.4f} s in recorded passes, "
              f"{ds - dp:.4f} s ({100 * (ds - dp) / ds:.1f} %) between them (uploads, optimiser, gaps)")
# the fastest configurations of each order (what to make the default: a switch that changes
# bits, such as DARTSC_SUM_BN_GRADS, needs its tests' tolerance too; docs/CLI.md)
for o in sorted({r["order"] for r in rows}):
    ds = sorted((r for r in rows if r["impl"].startswith("dartsc") and r["order"] == o and "repeat" not in r["impl"]),
                key=lambda r: r["median_s"])
    print(f"order {o}, fastest first: " + "; ".join(f"{r['impl'][7:] or 'default'} {r['median_s']:.4f} s" for r in ds[:5]))
for o in sorted({r["order"] for r in rows}):
    d = next((r for r in rows if r["impl"] == "dartsc" and r["order"] == o), None)
    t = next((r for r in rows if r["impl"] == "pytorch" and r["order"] == o), None)
    ds = d["median_s"] if d else float("nan")
    ts = t["median_s"] if t else float("nan")
    print(f"{o:>5} {ds:>14.4f} {ts:>15.4f} {ts / ds if d and t else float('nan'):>6.2f}x "
          f"{d.get('peak_device_alloc_mb', -1) if d else -1:>15} {t.get('peak_device_alloc_mb', -1) if t else -1:>16}")
EOF
if [[ -f $out/gpu-profile.txt ]]; then cat "$out/gpu-profile.txt"; fi
if [[ -f $out/gpu-profile-batched.txt ]]; then echo "== batched (every launch reduction)"; cat "$out/gpu-profile-batched.txt"; fi
