#!/usr/bin/env python3
"""onnx_check.py - independent checks of dartsc's ONNX export (tests/test_onnx.c).

    onnx_check.py check MODEL
        onnx.checker.check_model(full_check=True) and strict shape inference
        (infer_shapes(check_type=True, strict_mode=True)); then checks the interface
        dartsc promises: one input "input" (N, C, H, W) float32 with a symbolic batch
        dimension, one output "logits" whose inferred shape matches the declared one,
        opset 13 of the default domain, IR version 8. Prints the onnx version.
    onnx_check.py run [--check] MODEL IN.dtns OUT.dtns
        runs onnxruntime (CPUExecutionProvider) on every tensor of IN named "input" or
        "input.<tag>" and writes the output as "logits" or "logits.<tag>" to OUT. With
        --check, runs `check` first (one interpreter start for both).

Exit status 0 on success; 1 with a message on stderr on any failure.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tensorfile  # noqa: E402


def fail(msg):
    sys.stderr.write("onnx_check: %s\n" % msg)
    sys.exit(1)


def dims_of(vi):
    out = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(d.dim_value)
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def check(path):
    import onnx
    import onnx.shape_inference

    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    if m.ir_version != 8:
        fail("%s: IR version %d, expected 8" % (path, m.ir_version))
    ops = {o.domain: o.version for o in m.opset_import}
    if ops.get("", ops.get("ai.onnx")) != 13:
        fail("%s: default-domain opset %r, expected 13" % (path, ops))
    g = m.graph
    inits = {t.name for t in g.initializer}
    ins = [i for i in g.input if i.name not in inits]
    if [i.name for i in ins] != ["input"] or [o.name for o in g.output] != ["logits"]:
        fail("%s: interface %s -> %s, expected input -> logits"
             % (path, [i.name for i in ins], [o.name for o in g.output]))
    idims = dims_of(ins[0])
    if len(idims) < 2 or not isinstance(idims[0], str) or not all(isinstance(d, int) for d in idims[1:]):
        fail("%s: input dims %s: want a symbolic batch and static C, H, W" % (path, idims))
    declared = dims_of(g.output[0])
    got = dims_of(inferred.graph.output[0])
    if declared != got:
        fail("%s: declared output dims %s, inferred %s" % (path, declared, got))
    used = {i for n in g.node for i in n.input}
    unused = sorted(inits - used)
    if unused:
        fail("%s: %d unused initializers, e.g. %s" % (path, len(unused), unused[:3]))
    print("onnx %s: %s passes the checker (full) and strict shape inference; %d nodes, %d initializers"
          % (onnx.__version__, os.path.basename(path), len(g.node), len(g.initializer)))


def run(path, in_path, out_path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    ins = tensorfile.read(in_path)
    out = []
    for name, x in ins.items():
        if name != "input" and not name.startswith("input."):
            continue
        (y,) = sess.run(["logits"], {"input": np.ascontiguousarray(x, dtype=np.float32)})
        out.append(("logits" + name[len("input"):], np.asarray(y, dtype=np.float32)))
    if not out:
        fail("%s: no tensor named input or input.* in it" % in_path)
    tensorfile.write(out_path, out)


def main(argv):
    args = argv[1:]
    if len(args) == 2 and args[0] == "check":
        check(args[1])
        return 0
    if args and args[0] == "run":
        args = args[1:]
        do_check = bool(args) and args[0] == "--check"
        if do_check:
            args = args[1:]
        if len(args) == 3:
            if do_check:
                check(args[0])
            run(*args)
            return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except SystemExit:
        raise
    except Exception as e:  # the checker's and onnxruntime's errors, with their type
        fail("%s: %s" % (type(e).__name__, e))
