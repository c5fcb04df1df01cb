#!/usr/bin/env python3
"""rnn_onnx_run.py - runs dartsc's exported recurrent step (ONNX) in onnxruntime after a
full onnx.checker check: reads ids and hidden from a tensor file, writes logits and
hidden_out. usage: rnn_onnx_run.py MODEL.onnx IN.dtns OUT.dtns"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tensorfile  # noqa: E402

model, inp, out = sys.argv[1:4]
onnx.checker.check_model(onnx.load(model), full_check=True)
t = tensorfile.read(inp)
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
logits, hidden_out = sess.run(["logits", "hidden_out"], {"ids": t["ids"].astype(np.int32), "hidden": t["hidden"]})
tensorfile.write(out, [("logits", logits.astype(np.float32)), ("hidden_out", hidden_out.astype(np.float32))])
