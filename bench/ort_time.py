#!/usr/bin/env python3
"""ort_time.py MODEL BATCH RUNS - onnxruntime latency, one intra-op thread, all graph
optimisations: median over RUNS after 3 warm-up runs. One JSON line."""
import json
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
t = []
for _ in range(runs):
    t0 = time.perf_counter()
    s.run(None, {"input": x})
    t.append(time.perf_counter() - t0)
t.sort()
print(json.dumps({"impl": "onnxruntime", "version": ort.__version__, "batch": batch,
                  "median_ms": round(1e3 * t[len(t) // 2], 3), "min_ms": round(1e3 * t[0], 3)}))
