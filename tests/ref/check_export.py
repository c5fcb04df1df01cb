#!/usr/bin/env python3
"""check_export.py RUN_DIR - dartsc's runtime (RUN_DIR/predictions.dtns), onnxruntime on
RUN_DIR/model.onnx and the generated C (RUN_DIR/c/predict) must predict the same class for
every Fashion-MNIST test image the run was evaluated on. Exits 1 on any disagreement."""
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tensorfile  # noqa: E402


def main():
    run = sys.argv[1]
    pred = tensorfile.read(os.path.join(run, "predictions.dtns"))["predictions"]
    n = len(pred)
    with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
        raw = f.read()
    imgs = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    model = onnx.load(os.path.join(run, "model.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    mean = np.float32(json.loads(meta["input_mean"])[0])
    std = np.float32(json.loads(meta["input_std"])[0])
    x = ((imgs.astype(np.float32) / np.float32(255.0)) - mean) / std
    sess = ort.InferenceSession(os.path.join(run, "model.onnx"), providers=["CPUExecutionProvider"])
    ort_pred = np.concatenate([sess.run(None, {"input": x[i:i + 500]})[0].argmax(1) for i in range(0, n, 500)])
    c = subprocess.run([os.path.join(run, "c", "predict")], input=x.tobytes(), capture_output=True, check=True)
    c_pred = np.frombuffer(c.stdout, dtype=np.int32)
    ok = True
    for name, other in (("onnxruntime", ort_pred), ("generated C", c_pred)):
        same = int((other[:n] == pred).sum()) if len(other) == n else -1
        print("%s agrees with dartsc on %d of %d test images" % (name, same, n))
        ok &= same == n
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
