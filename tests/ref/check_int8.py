#!/usr/bin/env python3
"""check_int8.py DIR N - the int8 export against the float one on the first N Fashion-MNIST
test images. DIR holds f.onnx (float), q.onnx (QDQ) and the programs f/predict (float C),
q/predict (int8 C, float entry point) and i/predict (integer-only C): each reads float32
images on stdin and writes int32 classes. Prints one JSON object: accuracies, agreements and
the largest logit difference between the QDQ model and the int8 C, in units of the int8
C's output scale."""
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    d, n = sys.argv[1], int(sys.argv[2])
    with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
        imgs = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    with gzip.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)[:n].astype(np.int64)
    meta = {p.key: p.value for p in onnx.load(os.path.join(d, "f.onnx")).metadata_props}
    mean = np.float32(json.loads(meta["input_mean"])[0])
    std = np.float32(json.loads(meta["input_std"])[0])
    x = ((imgs.astype(np.float32) / np.float32(255.0)) - mean) / std
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    logits = {}
    for k in ("f", "q"):
        s = ort.InferenceSession(os.path.join(d, k + ".onnx"), so, providers=["CPUExecutionProvider"])
        logits[k] = np.concatenate([s.run(None, {"input": x[i:i + 500]})[0] for i in range(0, n, 500)])
    pred = {"ort_float": logits["f"].argmax(1), "ort_qdq": logits["q"].argmax(1)}
    for k in ("f", "q", "i"):
        out = subprocess.run([os.path.join(d, k, "predict")], input=x.tobytes(), capture_output=True, check=True).stdout
        pred["c_" + {"f": "float", "q": "int8", "i": "integer_only"}[k]] = np.frombuffer(out, dtype=np.int32)[:n]
    res = {"n": n}
    for k, p in pred.items():
        res["acc_" + k] = float((p == labels).mean())
    res["agree_c_int8_ort_qdq"] = float((pred["c_int8"] == pred["ort_qdq"]).mean())
    res["agree_c_int8_integer_only"] = float((pred["c_int8"] == pred["c_integer_only"]).mean())
    res["agree_c_float_ort_float"] = float((pred["c_float"] == pred["ort_float"]).mean())
    print(json.dumps(res))


if __name__ == "__main__":
    main()
