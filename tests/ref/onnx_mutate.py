"""onnx_mutate.py — invalid (and some valid) variants of an ONNX model, each judged by
onnx.checker, for tests/test_onnx.c's comparison with `dartsc inspect`.

    python onnx_mutate.py MODEL.onnx OUT_DIR [RANDOM_COUNT] [SEED]

Writes OUT_DIR/<case>.onnx and OUT_DIR/manifest.tsv, one line per file:
    file <TAB> checker verdict (1 valid, 0 invalid) <TAB> node name or - <TAB> what <TAB> checker message
The named cases each break one rule of ONNX's operator definitions (unknown op type, an
attribute the op does not declare, an untyped attribute, ...) or keep the model valid
(a vendor's domain, an internal "__" attribute, another valid op); then RANDOM_COUNT
random mutations of op types, attributes and input/output lists. The verdict is onnx's
checker without shape inference (check_model, full_check False): the node and graph
rules that inspect also checks.
"""
import os
import random
import sys

import onnx
import onnx.checker
import onnx.defs
import onnx.helper as helper
from onnx import AttributeProto as AP


def node_named(m, op):
    return next(n for n in m.graph.node if n.op_type == op)


def attr_named(n, name):
    return next(a for a in n.attribute if a.name == name)


def case_unknown_op(m):
    n = node_named(m, "Conv")
    n.op_type = "Conv2D"
    return n, "op type Conv2D"


def case_wrong_case(m):
    n = node_named(m, "Relu")
    n.op_type = "relu"
    return n, "op type relu"


def case_later_opset(m):
    n = node_named(m, "Relu")
    n.op_type = "Trilu"  # since opset 14; the model imports 13
    return n, "Trilu at opset 13"


def case_deprecated(m):
    n = node_named(m, "Relu")
    n.op_type = "Upsample"  # deprecated since opset 10
    n.input.append(n.input[0])
    return n, "Upsample (deprecated)"


def case_unknown_attr(m):
    n = node_named(m, "Conv")
    n.attribute.append(helper.make_attribute("dilation", 1))
    return n, "attribute dilation"


def case_untyped_attr(m):
    n = node_named(m, "Conv")
    attr_named(n, "group").type = AP.UNDEFINED
    return n, "untyped group"


def case_attr_wrong_type(m):
    n = node_named(m, "Conv")
    a = attr_named(n, "strides")
    vals = list(a.ints)
    del a.ints[:]
    a.type = AP.FLOATS
    a.floats.extend(float(v) for v in vals)
    return n, "strides as floats"


def case_attr_field_mismatch(m):
    n = node_named(m, "Conv")
    a = attr_named(n, "group")
    a.ClearField("i")
    a.f = 1.0  # type says INT
    return n, "group holds a float"


def case_attr_two_values(m):
    n = node_named(m, "Softmax")
    a = attr_named(n, "axis")
    a.type = AP.INTS
    a.ClearField("i")
    a.ints.extend([1])
    a.floats.extend([1.0])
    return n, "axis holds ints and floats"


def case_missing_required(m):
    n = node_named(m, "Relu")
    n.op_type = "Cast"  # 'to' is required
    return n, "Cast without to"


def case_duplicate_attr(m):
    n = node_named(m, "Conv")
    n.attribute.append(helper.make_attribute("group", 1))
    return n, "group twice"


def case_too_many_inputs(m):
    n = node_named(m, "Relu")
    n.input.append(n.input[0])
    return n, "Relu with 2 inputs"


def case_too_many_outputs(m):
    n = node_named(m, "Relu")
    n.output.append(n.output[0] + ".extra")
    return n, "Relu with 2 outputs"


def case_empty_required_input(m):
    n = node_named(m, "Gemm")
    n.input[1] = ""
    return n, "Gemm's B empty"


def case_bn_two_outputs(m):
    n = node_named(m, "BatchNormalization")
    n.output.append(n.output[0] + ".mean")
    return n, "BatchNormalization-9 with 2 outputs (1 or 5)"


def case_tensor_attr_without_value(m):
    n = node_named(m, "Relu")
    n.op_type = "ConstantOfShape"  # value: TENSOR, optional
    a = n.attribute.add()
    a.name = "value"
    a.type = AP.TENSOR
    return n, "ConstantOfShape value without a tensor"


def case_domain_not_imported(m):
    n = node_named(m, "Relu")
    n.domain = "com.example"
    return n, "domain not imported"


def case_newer_opset(m):
    m.opset_import[0].version = 18  # newer than onnx 1.12 knows: ReduceMean-18 takes its axes as an input
    n = node_named(m, "Relu")
    n.op_type = "ReduceMean"
    n.input.append(next(i.name for i in m.graph.initializer if i.data_type == onnx.TensorProto.INT64))
    return n, "ReduceMean-18 (axes input) judged by onnx 1.12"


def case_ok_vendor_domain(m):
    n = node_named(m, "Relu")
    n.domain = "com.example"
    n.op_type = "FancyRelu"
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    return n, "a vendor's op (not checkable: accepted)"


def case_ok_internal_attr(m):
    n = node_named(m, "Conv")
    n.attribute.append(helper.make_attribute("__dartsc_note", 1))
    return n, "an internal __ attribute"


def case_ok_other_op(m):
    n = node_named(m, "Relu")
    n.op_type = "Abs"
    return n, "Relu replaced by Abs"


def case_ai_onnx_on_a_node(m):
    n = node_named(m, "Relu")
    n.domain = "ai.onnx"  # the import is "": onnx.checker refuses either way
    return n, "domain ai.onnx on a node"


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]

ALL_OPS = sorted({s.name for s in onnx.defs.get_all_schemas_with_history() if s.domain == ""})
ALL_ATTRS = sorted({a for s in onnx.defs.get_all_schemas_with_history() for a in s.attributes})
TYPES = [AP.FLOAT, AP.INT, AP.STRING, AP.FLOATS, AP.INTS, AP.STRINGS, AP.TENSOR, AP.UNDEFINED]


def random_attr(rng, name):
    t = rng.choice(TYPES)
    a = AP()
    a.name = name
    if t == AP.UNDEFINED:
        a.i = 1
        return a
    vals = {AP.FLOAT: 0.5, AP.INT: rng.randint(0, 3), AP.STRING: "SAME_UPPER", AP.FLOATS: [0.5, 1.0],
            AP.INTS: [1, 1], AP.STRINGS: ["a"], AP.TENSOR: helper.make_tensor("t", onnx.TensorProto.FLOAT, [1], [0.0])}
    return helper.make_attribute(name, vals[t])


def random_mutation(m, rng):
    nodes = list(m.graph.node)
    n = rng.choice(nodes)
    k = rng.randrange(8)
    if k == 0:
        n.op_type = rng.choice(ALL_OPS + ["Conv2d", "Frobnicate", n.op_type.lower(), n.op_type.upper()])
        what = f"op type {n.op_type}"
    elif k == 1:
        name = rng.choice([a.name for a in n.attribute] + rng.sample(ALL_ATTRS, 3))
        n.attribute.append(random_attr(rng, name))
        what = f"attribute {name} added"
    elif k == 2 and len(n.attribute):
        i = rng.randrange(len(n.attribute))
        name = n.attribute[i].name
        n.attribute[i].CopyFrom(random_attr(rng, name))
        what = f"attribute {name} retyped"
    elif k == 3 and len(n.attribute):
        i = rng.randrange(len(n.attribute))
        what = f"attribute {n.attribute[i].name} removed"
        del n.attribute[i]
    elif k == 4 and len(n.input):
        n.input.append(rng.choice(list(n.input)))
        what = "an input repeated"
    elif k == 5 and len(n.input) > 1:
        what = "last input dropped"
        del n.input[-1]
    elif k == 6:
        n.output.append(n.output[0] + f".x{rng.randrange(1000)}")
        what = "an output added"
    else:
        i = rng.randrange(len(n.input)) if len(n.input) else 0
        if len(n.input):
            n.input[i] = ""
        what = f"input {i} emptied"
    return n, what


def verdict(m):
    try:
        onnx.checker.check_model(m, full_check=False)
        return 1, ""
    except Exception as e:  # ValidationError, and the C++ checker's own
        return 0, " ".join(str(e).split())[:300]


def main():
    src, out = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    base = onnx.load(src)
    os.makedirs(out, exist_ok=True)
    lines = []
    jobs = [(f.__name__[5:], f) for f in CASES] + [(f"random{i:04d}", None) for i in range(count)]
    for name, f in jobs:
        m = onnx.ModelProto()
        m.CopyFrom(base)
        try:
            n, what = f(m) if f else random_mutation(m, rng)
        except StopIteration:  # the model lacks the op this case needs
            continue
        ok, msg = verdict(m)
        path = os.path.join(out, name + ".onnx")
        with open(path, "wb") as fh:
            fh.write(m.SerializeToString())
        lines.append(f"{name}.onnx\t{ok}\t{n.name or '-'}\t{what}\t{msg}")
    with open(os.path.join(out, "manifest.tsv"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
