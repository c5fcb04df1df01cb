#!/usr/bin/env python3
"""torch_infer.py RUN_DIR HW BATCH RUNS - PyTorch inference latency of a run directory's
network: the reference evaluation network (tests/ref/darts_ref.py NetworkCIFAR, the DARTS
authors' model.py) built from RUN_DIR/genotype.json, loaded with RUN_DIR/model.dtns (the
same weights the generated C and the ONNX model carry), eval mode, torch.no_grad(), one
thread. Median over RUNS after 3 warm-up runs of the wall time and of the thread's CPU
time (robust to other jobs on a shared machine), and the peak resident memory. One JSON
line, as bench/ort_time.py.

The network's size comes from the weights: C from the stem (3 C channels), the cell count
from the names, the classes from the classifier; HW (the input side) is an argument.
Run with /usr/bin/python3 (Debian's torch)."""
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import darts_ref  # noqa: E402  (sets OMP_WAIT_POLICY before importing torch)
import numpy as np  # noqa: E402
import tensorfile  # noqa: E402
import torch  # noqa: E402


def main():
    run, hw, batch, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(1)
    with open(os.path.join(run, "genotype.json")) as f:
        genotype = json.load(f)
    w = tensorfile.read(os.path.join(run, "model.dtns"))
    stem = w["stem.0.weight"]
    C, in_c = stem.shape[0] // 3, stem.shape[1]
    layers = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("cells."))
    classes = w["classifier.weight"].shape[0]
    net = darts_ref.NetworkCIFAR(C, classes, layers, False, genotype, in_c, hw)
    darts_ref.load_strict(net, w, {"meta/weights_version": None}, run + "/model.dtns")
    net.eval()
    n = batch * in_c * hw * hw
    x = torch.from_numpy(((np.arange(n, dtype=np.int64) * 7919 % 1000).astype(np.float32) / 500.0 - 1.0)
                         .reshape(batch, in_c, hw, hw))
    wall, cpu = [], []
    with torch.no_grad():
        for _ in range(3):
            net(x)
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.thread_time()
            net(x)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
    wall.sort()
    cpu.sort()
    print(json.dumps({"impl": "pytorch", "version": torch.__version__, "batch": batch,
                      "median_ms": round(1e3 * wall[runs // 2], 3), "min_ms": round(1e3 * wall[0], 3),
                      "cpu_median_ms": round(1e3 * cpu[runs // 2], 3),
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


if __name__ == "__main__":
    main()
