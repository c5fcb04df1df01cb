#!/usr/bin/env python3
"""ort_time.py MODEL BATCH RUNS - onnxruntime latency, one intra-op thread, all graph
optimisations: median over RUNS after 3 warm-up runs of the wall time and of the thread's
CPU time (robust to other jobs on a shared machine; with one intra-op thread onnxruntime
computes in the calling thread), and the peak resident memory. One JSON line."""
import json
import resource
import sys
import time

import numpy as np
import onnxruntime as ort

model, batch, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
shape = [batch] + [d for d in s.get_inputs()[0].shape[1:]]
x = (np.arange(np.prod(shape), dtype=np.int64) * 7919 % 1000).astype(np.float32).reshape(shape) / 500.0 - 1.0
for _ in range(3):
    s.run(None, {"input": x})
t, c = [], []
for _ in range(runs):
    t0, c0 = time.perf_counter(), time.thread_time()
    s.run(None, {"input": x})
    t.append(time.perf_counter() - t0)
    c.append(time.thread_time() - c0)
t.sort()
c.sort()
print(json.dumps({"impl": "onnxruntime", "version": ort.__version__, "batch": batch,
                  "median_ms": round(1e3 * t[len(t) // 2], 3), "min_ms": round(1e3 * t[0], 3),
                  "cpu_median_ms": round(1e3 * c[len(c) // 2], 3),
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
