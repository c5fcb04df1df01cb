"""onnx_seeds.py — the seed corpus and dictionary of the inspect fuzzer (scripts/fuzz-inspect).

    /usr/bin/python3 tests/fuzz/onnx_seeds.py CORPUS_DIR DICT_FILE

Writes a small valid model made with onnx.helper (Conv, BatchNormalization, Relu, pools,
Concat, Slice, Gemm, Softmax, an If with two subgraphs, a vendor-domain node, metadata),
then the variants tests/ref/onnx_mutate.py makes of it (each rule of the operator
definitions broken once, valid variants, 40 random mutations), into CORPUS_DIR; and a
libFuzzer dictionary of every ONNX op type and attribute name and the model's field tags.
"""
import os
import subprocess
import sys

import numpy as np
import onnx
import onnx.defs
import onnx.numpy_helper
import onnx.helper as h
from onnx import TensorProto as T


def init(name, shape, dtype=np.float32):
    a = (np.arange(int(np.prod(shape))) % 7 - 3).astype(dtype).reshape(shape)
    return onnx.numpy_helper.from_array(a, name)


def base_model():
    nodes = [
        h.make_node("Conv", ["x", "w", "b"], ["c"], "conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        h.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["n"], "bn", epsilon=1e-5),
        h.make_node("Relu", ["n"], ["r"], "relu"),
        h.make_node("MaxPool", ["r"], ["p"], "pool", kernel_shape=[2, 2], strides=[2, 2]),
        h.make_node("AveragePool", ["r"], ["q"], "avg", kernel_shape=[2, 2], strides=[2, 2], count_include_pad=0),
        h.make_node("Concat", ["p", "q"], ["cc"], "cat", axis=1),
        h.make_node("Slice", ["cc", "st", "en", "ax"], ["sl"], "slice"),
        h.make_node("GlobalAveragePool", ["sl"], ["gp"], "gap"),
        h.make_node("Flatten", ["gp"], ["f"], "flat", axis=1),
        h.make_node("Gemm", ["f", "fw", "fb"], ["lg"], "fc", transB=1),
        h.make_node("ReduceSum", ["lg"], ["s"], "sum", keepdims=0),
        h.make_node("Greater", ["s", "zero"], ["cond"], "gt"),
        h.make_node("If", ["cond"], ["y"], "if",
                    then_branch=h.make_graph([h.make_node("Softmax", ["lg"], ["t"], "sm", axis=-1)], "then", [],
                                             [h.make_tensor_value_info("t", T.FLOAT, [1, 3])]),
                    else_branch=h.make_graph([h.make_node("Identity", ["lg"], ["e"], "id")], "else", [],
                                             [h.make_tensor_value_info("e", T.FLOAT, [1, 3])])),
        h.make_node("Clip6", ["y"], ["z"], "vendor", domain="com.example", limit=6.0),
    ]
    inits = [init("w", [4, 2, 3, 3]), init("b", [4]), init("g", [4]), init("be", [4]), init("m", [4]), init("v", [4]) ,
             init("st", [1], np.int64), init("en", [1], np.int64), init("ax", [1], np.int64), init("fw", [3, 6]),
             init("fb", [3]), init("zero", [], np.float32)]
    inits[5] = onnx.numpy_helper.from_array(np.ones(4, np.float32), "v")
    inits[7] = onnx.numpy_helper.from_array(np.array([6], np.int64), "en")
    g = h.make_graph(nodes, "seed", [h.make_tensor_value_info("x", T.FLOAT, ["N", 2, 8, 8])],
                     [h.make_tensor_value_info("z", T.FLOAT, [1, 3])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13), h.make_opsetid("com.example", 1)],
                     producer_name="onnx_seeds")
    m.ir_version = 8
    h.set_model_props(m, {"space": "seed", "class_names": '["a", "b", "c"]'})
    return m


def main():
    corpus, dict_path = sys.argv[1], sys.argv[2]
    os.makedirs(corpus, exist_ok=True)
    m = base_model()
    onnx.checker.check_model(m)
    base = os.path.join(corpus, "seed_base.onnx")
    onnx.save(m, base)
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([sys.executable, os.path.join(here, "..", "ref", "onnx_mutate.py"), base, corpus, "40", "3"],
                   check=True)
    os.remove(os.path.join(corpus, "manifest.tsv"))
    words = sorted({s.name for s in onnx.defs.get_all_schemas_with_history()} |
                   {a for s in onnx.defs.get_all_schemas_with_history() for a in s.attributes} |
                   {"ai.onnx", "ai.onnx.ml", "com.example", "__internal"})
    with open(dict_path, "w") as f:
        f.write("# ONNX op types and attribute names (tests/fuzz/onnx_seeds.py)\n")
        for w in words:
            f.write('"' + w + '"\n')


if __name__ == "__main__":
    main()
