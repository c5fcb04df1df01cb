#!/usr/bin/env python3
"""darts_ref.py - an independent PyTorch reference of the DARTS CIFAR-10 search supernet
(shared/REFERENCE.md), used as the external oracle for dartsc's parity tests.

The module structure reproduces the published search code (model_search.py of the DARTS
authors), so state_dict names are the ones dartsc gives its IR parameters:

    stem.0.weight  stem.1.{weight,bias,running_mean,running_var}
    cells.{i}.preprocess0.op.{1.weight,2.running_*}        (ReLUConvBN, previous normal)
    cells.{i}.preprocess0.{conv_1,conv_2}.weight, bn.running_*   (FactorizedReduce, after reduction)
    cells.{i}.preprocess1.op.{1.weight,2.running_*}
    cells.{i}._ops.{e}._ops.{o}...    o: 0 none, 1 max_pool_3x3, 2 avg_pool_3x3, 3 skip_connect,
                                         4 sep_conv_3x3, 5 sep_conv_5x5, 6 dil_conv_3x3, 7 dil_conv_5x5
    classifier.{weight,bias}
    alphas_normal, alphas_reduce (14 x 8; not module parameters, not in the weight count)

Modes (see --help of each):
    net       forward + backward of the supernet, writes logits, loss, gradients, running stats
    cell      the same for one search cell on given s0, s1 with loss = sum(out * r)
    eval      forward + backward of the evaluation network (NetworkCIFAR) of a genotype
              (--genotype JSON, --auxiliary, --train, --drop-path-prob)
    eval-count  weight count of the evaluation network (with and without auxiliary head)
    init      a random input file for `net` (PyTorch default init, alpha = 1e-3 N(0,1))
    init-cell a random input file for `cell`
    selftest  parameter count of the CIFAR supernet + float64 gradcheck of a tiny cell

Files use the DTNS format of tests/ref/tensorfile.py.
"""
import argparse
import collections
import os
import sys

# Passive OpenMP waiting: with active spinning, torch on a loaded machine (parallel ctest,
# compilers) slows down by 10-50x. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tensorfile  # noqa: E402

PRIMITIVES = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]


# ----------------------------------------------------------------------------------------
# operations (all convolutions without bias; BN affine only where stated)
# ----------------------------------------------------------------------------------------
class Zero(nn.Module):
    """`none`: zeros of the output shape (stride 2: the input subsampled [::2, ::2], times 0)."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Identity(nn.Module):
    def forward(self, x):
        return x


class ReLUConvBN(nn.Module):
    """ReLU -> kxk conv -> BN; submodules op.0 (ReLU), op.1 (conv), op.2 (BN)."""

    def __init__(self, C_in, C_out, kernel, stride, padding, affine):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class FactorizedReduce(nn.Module):
    """ReLU; two 1x1 stride-2 convs to C_out/2 each, the second on x[:, :, 1:, 1:]; concat; BN."""

    def __init__(self, C_in, C_out, affine):
        super().__init__()
        assert C_out % 2 == 0, "FactorizedReduce needs an even C_out"
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        a = self.conv_1(x)
        b = self.conv_2(x[:, :, 1:, 1:])
        return self.bn(torch.cat([a, b], dim=1))


class SepConv(nn.Module):
    """ReLU, dw kxk (stride s), pw 1x1, BN, ReLU, dw kxk (stride 1), pw 1x1, BN -> op.0..op.7."""

    def __init__(self, C_in, C_out, kernel, stride, padding, affine):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel, stride=stride, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel, stride=1, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    """ReLU, dw kxk dilation d (stride s), pw 1x1, BN -> op.0..op.3."""

    def __init__(self, C_in, C_out, kernel, stride, padding, dilation, affine):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel, stride=stride, padding=padding, dilation=dilation,
                      groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


def make_op(name, C, stride, affine=False):
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(C, C, affine)
    if name == "sep_conv_3x3":
        return SepConv(C, C, 3, stride, 1, affine)
    if name == "sep_conv_5x5":
        return SepConv(C, C, 5, stride, 2, affine)
    if name == "dil_conv_3x3":
        return DilConv(C, C, 3, stride, 2, 2, affine)
    if name == "dil_conv_5x5":
        return DilConv(C, C, 5, stride, 4, 2, affine)
    raise ValueError(name)


class MixedOp(nn.Module):
    """sum_o softmax(alpha_edge)_o * op_o(x), `none` included; pools get a BN (no affine)."""

    def __init__(self, C, stride):
        super().__init__()
        self._ops = nn.ModuleList()
        for p in PRIMITIVES:
            op = make_op(p, C, stride, affine=False)
            if "pool" in p:
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            self._ops.append(op)

    def forward(self, x, weights):
        # weights: the softmax row of this edge, shape (8,)
        out = None
        for w, op in zip(weights, self._ops):
            t = w * op(x)
            out = t if out is None else out + t
        return out


class Cell(nn.Module):
    def __init__(self, steps, multiplier, C_pp, C_p, C, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        self._steps = steps
        self._multiplier = multiplier
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_pp, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(C_pp, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        self._ops = nn.ModuleList()
        for i in range(steps):
            for j in range(2 + i):
                stride = 2 if reduction and j < 2 else 1
                self._ops.append(MixedOp(C, stride))

    def forward(self, s0, s1, weights):
        s0 = self.preprocess0(s0)
        s1 = self.preprocess1(s1)
        states = [s0, s1]
        e = 0
        for _ in range(self._steps):
            s = None
            for h in states:
                t = self._ops[e](h, weights[e])
                s = t if s is None else s + t
                e += 1
            states.append(s)
        return torch.cat(states[-self._multiplier:], dim=1)


def num_edges(steps):
    return sum(2 + i for i in range(steps))


class Network(nn.Module):
    def __init__(self, in_c, C, classes, layers, steps=4, multiplier=4, stem_mult=3):
        super().__init__()
        self._steps = steps
        self._multiplier = multiplier
        C_cur = stem_mult * C
        self.stem = nn.Sequential(
            nn.Conv2d(in_c, C_cur, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_cur),  # affine
        )
        C_pp, C_p, C_cur = C_cur, C_cur, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            if i in (layers // 3, 2 * layers // 3):
                C_cur *= 2
                reduction = True
            else:
                reduction = False
            self.cells.append(Cell(steps, multiplier, C_pp, C_p, C_cur, reduction, reduction_prev))
            reduction_prev = reduction
            C_pp, C_p = C_p, multiplier * C_cur
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, classes)
        k = num_edges(steps)
        # architecture parameters: plain tensors, not module parameters (as in the original)
        self.alphas_normal = 1e-3 * torch.randn(k, len(PRIMITIVES))
        self.alphas_reduce = 1e-3 * torch.randn(k, len(PRIMITIVES))

    def forward(self, x):
        s0 = s1 = self.stem(x)
        wn = F.softmax(self.alphas_normal, dim=-1)
        wr = F.softmax(self.alphas_reduce, dim=-1)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, wr if cell.reduction else wn)
        out = self.global_pooling(s1)
        return self.classifier(out.view(out.size(0), -1))


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def exchange_state(module):
    """state_dict entries exchanged with dartsc: everything but num_batches_tracked."""
    return collections.OrderedDict(
        (k, v) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked"))


def weight_count(module):
    return sum(p.numel() for p in module.parameters())


def running_names(module):
    return [k for k in exchange_state(module) if k.endswith("running_mean") or k.endswith("running_var")]


class RefError(Exception):
    pass


def load_strict(module, tensors, extra_expected, prefix_desc):
    """Load every exchanged state_dict entry from `tensors`; error on missing, extra, shape or
    dtype mismatch, listing all offenders. extra_expected: names (with shapes or None) that
    are inputs other than module state."""
    want = exchange_state(module)
    problems = []
    for k, v in want.items():
        if k not in tensors:
            problems.append("missing: %s %s" % (k, list(v.shape)))
            continue
        a = tensors[k]
        if a.dtype != np.float32:
            problems.append("dtype: %s is %s, expected float32" % (k, a.dtype))
        if tuple(a.shape) != tuple(v.shape):
            problems.append("shape: %s is %s, expected %s" % (k, list(a.shape), list(v.shape)))
    for k, a in tensors.items():
        if k in want:
            continue
        if k in extra_expected:
            shp = extra_expected[k]
            if shp is not None and tuple(a.shape) != tuple(shp):
                problems.append("shape: %s is %s, expected %s" % (k, list(a.shape), list(shp)))
            continue
        problems.append("extra: %s %s" % (k, list(a.shape)))
    for k in extra_expected:
        if k not in tensors:
            problems.append("missing: %s" % k)
    if problems:
        shown = problems[:60]
        if len(problems) > len(shown):
            shown.append("... and %d more" % (len(problems) - len(shown)))
        raise RefError("%s: %d problem(s) loading the input:\n  %s" %
                       (prefix_desc, len(problems), "\n  ".join(shown)))
    sd = module.state_dict()
    with torch.no_grad():
        for k in want:
            sd[k].copy_(torch.from_numpy(np.ascontiguousarray(tensors[k])))


def f32(t):
    return t.detach().to(torch.float32).cpu().numpy()


# ----------------------------------------------------------------------------------------
# modes
# ----------------------------------------------------------------------------------------
def run_net(args):
    dt = torch.float64 if args.double else torch.float32
    inp = tensorfile.read(args.inp)
    net = Network(args.in_c, args.C, args.classes, args.layers, args.steps, args.multiplier,
                  args.stem_mult)
    k = num_edges(args.steps)
    imgs = inp.get("images")
    if imgs is None or imgs.ndim != 4 or imgs.shape[1] != args.in_c:
        raise RefError("%s: 'images' must be (N, %d, H, W), got %s" %
                       (args.inp, args.in_c, None if imgs is None else list(imgs.shape)))
    N = imgs.shape[0]
    extra = {"alphas_normal": (k, len(PRIMITIVES)), "alphas_reduce": (k, len(PRIMITIVES)),
             "images": None, "labels": (N,)}
    load_strict(net, inp, extra, args.inp)
    if inp["labels"].dtype != np.int32:
        raise RefError("%s: 'labels' must be int32" % args.inp)
    labels = torch.from_numpy(inp["labels"].astype(np.int64))
    if labels.numel() and (labels.min() < 0 or labels.max() >= args.classes):
        raise RefError("%s: labels out of range 0..%d" % (args.inp, args.classes - 1))
    net = net.to(dt).train()
    net.alphas_normal = torch.from_numpy(inp["alphas_normal"]).to(dt).requires_grad_(True)
    net.alphas_reduce = torch.from_numpy(inp["alphas_reduce"]).to(dt).requires_grad_(True)
    x = torch.from_numpy(imgs).to(dt)

    logits = net(x)
    loss = F.cross_entropy(logits, labels)
    running = [(n, f32(v)) for n, v in exchange_state(net).items()
               if n.endswith("running_mean") or n.endswith("running_var")]
    net.zero_grad(set_to_none=True)
    loss.backward()

    out = [("logits", f32(logits)), ("loss", f32(loss).reshape(1)),
           ("count/weights", np.array([weight_count(net)], dtype=np.int32))]
    for n, p in net.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        out.append(("grad/" + n, f32(g)))
    for name in ("alphas_normal", "alphas_reduce"):
        a = getattr(net, name)  # a network without cells of one kind leaves its alpha unused
        out.append(("grad/" + name, f32(a.grad if a.grad is not None else torch.zeros_like(a))))
    out += [("running/" + n, v) for n, v in running]
    tensorfile.write(args.out, out)
    if args.verbose:
        print("loss %.8g  weights %d  tensors %d" % (loss.item(), weight_count(net), len(out)))


def run_cell(args):
    dt = torch.float64 if args.double else torch.float32
    inp = tensorfile.read(args.inp)
    cell = Cell(args.steps, args.multiplier, args.C_pp, args.C_p, args.C, bool(args.reduction),
                bool(args.reduction_prev))
    k = num_edges(args.steps)
    extra = {"alphas": (k, len(PRIMITIVES)), "s0": None, "s1": None, "r": None}
    load_strict(cell, inp, extra, args.inp)
    cell = cell.to(dt).train()
    alphas = torch.from_numpy(inp["alphas"]).to(dt).requires_grad_(True)
    s0 = torch.from_numpy(inp["s0"]).to(dt).requires_grad_(True)
    s1 = torch.from_numpy(inp["s1"]).to(dt).requires_grad_(True)
    r = torch.from_numpy(inp["r"]).to(dt)
    out = cell(s0, s1, F.softmax(alphas, dim=-1))
    if tuple(r.shape) != tuple(out.shape):
        raise RefError("%s: 'r' has shape %s, the cell output is %s" %
                       (args.inp, list(r.shape), list(out.shape)))
    loss = (out * r).sum()
    running = [(n, f32(v)) for n, v in exchange_state(cell).items()
               if n.endswith("running_mean") or n.endswith("running_var")]
    loss.backward()
    res = [("out", f32(out)), ("loss", f32(loss).reshape(1)),
           ("count/weights", np.array([weight_count(cell)], dtype=np.int32))]
    for n, p in cell.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        res.append(("grad/" + n, f32(g)))
    res += [("grad/alphas", f32(alphas.grad)), ("grad/s0", f32(s0.grad)), ("grad/s1", f32(s1.grad))]
    res += [("running/" + n, v) for n, v in running]
    tensorfile.write(args.out, res)
    if args.verbose:
        print("loss %.8g  out %s  tensors %d" % (loss.item(), list(out.shape), len(res)))


def _net_from_input(args, extra_names):
    """Build the network and load a `net`-style input (weights, alphas, images, labels) plus
    the extra inputs named in extra_names (name -> expected shape or None)."""
    inp = tensorfile.read(args.inp)
    net = Network(args.in_c, args.C, args.classes, args.layers, args.steps, args.multiplier,
                  args.stem_mult)
    k = num_edges(args.steps)
    extra = {"alphas_normal": (k, len(PRIMITIVES)), "alphas_reduce": (k, len(PRIMITIVES))}
    extra.update(extra_names)
    load_strict(net, inp, extra, args.inp)
    return net, inp


def _images_labels(args, inp, xname, yname, dt):
    x, y = inp[xname], inp[yname]
    if x.ndim != 4 or x.shape[1] != args.in_c:
        raise RefError("%s: '%s' must be (N, %d, H, W), got %s" % (args.inp, xname, args.in_c, list(x.shape)))
    if y.dtype != np.int32 or y.shape != (x.shape[0],):
        raise RefError("%s: '%s' must be int32 (%d,), got %s %s" % (args.inp, yname, x.shape[0], y.dtype, list(y.shape)))
    if y.size and (y.min() < 0 or y.max() >= args.classes):
        raise RefError("%s: '%s' out of range 0..%d" % (args.inp, yname, args.classes - 1))
    return torch.from_numpy(x).to(dt), torch.from_numpy(y.astype(np.int64))


def run_archgrad(args):
    """The architecture gradient of one DARTS alpha step (REFERENCE.md, first/second order).

    second order: w' = w - eta*(momentum*buf + dL_train/dw + wd*w)
                  dalpha = dL_val(w', a)/da, v = dL_val(w', a)/dw'
                  R = 0.01/||v||, g+- = dL_train(w +- R v, a)/da
                  grad = dalpha - eta*(g+ - g-)/(2R)
    first order:  grad = dL_val(w, a)/da
    """
    dt = torch.float64 if args.double else torch.float32
    net0 = Network(args.in_c, args.C, args.classes, args.layers, args.steps, args.multiplier,
                   args.stem_mult)
    pnames = [n for n, _ in net0.named_parameters()]
    shapes = dict((n, tuple(p.shape)) for n, p in net0.named_parameters())
    inp_peek = tensorfile.read(args.inp)
    extra = {"images": None, "labels": None, "images_val": None, "labels_val": None}
    for n in pnames:
        if "momentum/" + n in inp_peek:
            extra["momentum/" + n] = shapes[n]
    net, inp = _net_from_input(args, extra)
    net = net.to(dt).train()
    an = torch.from_numpy(inp["alphas_normal"]).to(dt).requires_grad_(True)
    ar = torch.from_numpy(inp["alphas_reduce"]).to(dt).requires_grad_(True)
    net.alphas_normal, net.alphas_reduce = an, ar
    xt, yt = _images_labels(args, inp, "images", "labels", dt)
    xv, yv = _images_labels(args, inp, "images_val", "labels_val", dt)
    params = [p for _, p in net.named_parameters()]
    alphas = [an, ar]
    out = []
    if args.order == 1:
        lv = F.cross_entropy(net(xv), yv)
        ga = torch.autograd.grad(lv, alphas)
        out += [("loss_val", f32(lv).reshape(1))]
    else:
        w = [p.detach().clone() for p in params]
        bufs = []
        for n, p in zip(pnames, params):
            b = inp.get("momentum/" + n)
            bufs.append(torch.zeros_like(p) if b is None else torch.from_numpy(b).to(dt))
        lt = F.cross_entropy(net(xt), yt)
        gw = torch.autograd.grad(lt, params)
        with torch.no_grad():
            for p, w0, g, b in zip(params, w, gw, bufs):
                p.copy_(w0 - args.eta * (args.momentum * b + g + args.wd * w0))
        lv = F.cross_entropy(net(xv), yv)
        g = torch.autograd.grad(lv, alphas + params)
        dalpha, v = g[:2], g[2:]
        vnorm = torch.sqrt(sum((t.double() ** 2).sum() for t in v))
        R = args.hvp_r / vnorm.item()
        with torch.no_grad():
            for p, w0, vi in zip(params, w, v):
                p.copy_(w0 + R * vi)
        gp = torch.autograd.grad(F.cross_entropy(net(xt), yt), alphas)
        with torch.no_grad():
            for p, w0, vi in zip(params, w, v):
                p.copy_(w0 - R * vi)
        gn = torch.autograd.grad(F.cross_entropy(net(xt), yt), alphas)
        with torch.no_grad():
            for p, w0 in zip(params, w):
                p.copy_(w0)
        implicit = [(a - b) / (2 * R) for a, b in zip(gp, gn)]
        ga = [d - args.eta * h for d, h in zip(dalpha, implicit)]
        out += [("loss_train", f32(lt).reshape(1)), ("loss_val", f32(lv).reshape(1)),
                ("R", np.array([R], dtype=np.float32)),
                ("vnorm", np.array([vnorm.item()], dtype=np.float32)),
                ("dalpha/alphas_normal", f32(dalpha[0])), ("dalpha/alphas_reduce", f32(dalpha[1])),
                ("implicit/alphas_normal", f32(implicit[0])),
                ("implicit/alphas_reduce", f32(implicit[1]))]
    out += [("grad/alphas_normal", f32(ga[0])), ("grad/alphas_reduce", f32(ga[1]))]
    tensorfile.write(args.out, out)
    if args.verbose:
        print("archgrad order %d: |grad| %.6g" % (args.order, float(sum((t.double() ** 2).sum() for t in ga)) ** 0.5))
    return ga


def run_init(args):
    torch.manual_seed(args.seed)
    net = Network(args.in_c, args.C, args.classes, args.layers, args.steps, args.multiplier,
                  args.stem_mult)
    items = [(n, f32(v)) for n, v in exchange_state(net).items()]
    items.append(("alphas_normal", f32(net.alphas_normal)))
    items.append(("alphas_reduce", f32(net.alphas_reduce)))
    items.append(("images", f32(torch.randn(args.batch, args.in_c, args.hw, args.hw))))
    items.append(("labels", torch.randint(0, args.classes, (args.batch,)).numpy().astype(np.int32)))
    if args.val:
        items.append(("images_val", f32(torch.randn(args.batch, args.in_c, args.hw, args.hw))))
        items.append(("labels_val",
                      torch.randint(0, args.classes, (args.batch,)).numpy().astype(np.int32)))
    if args.momentum_bufs:
        for n, p in net.named_parameters():
            items.append(("momentum/" + n, f32(0.01 * torch.randn_like(p))))
    tensorfile.write(args.out, items)


def run_init_cell(args):
    torch.manual_seed(args.seed)
    cell = Cell(args.steps, args.multiplier, args.C_pp, args.C_p, args.C, bool(args.reduction),
                bool(args.reduction_prev))
    k = num_edges(args.steps)
    items = [(n, f32(v)) for n, v in exchange_state(cell).items()]
    hw0 = args.hw * 2 if args.reduction_prev else args.hw
    s0 = torch.randn(args.batch, args.C_pp, hw0, hw0)
    s1 = torch.randn(args.batch, args.C_p, args.hw, args.hw)
    alphas = args.alpha_scale * torch.randn(k, len(PRIMITIVES))
    with torch.no_grad():
        out = cell.train()(s0, s1, F.softmax(alphas, dim=-1))
    items += [("alphas", f32(alphas)), ("s0", f32(s0)), ("s1", f32(s1)),
              ("r", f32(torch.randn(out.shape)))]
    tensorfile.write(args.out, items)


# ----------------------------------------------------------------------------------------
# selftest
# ----------------------------------------------------------------------------------------
# Weight count of the CIFAR-10 search supernet (in_c 3, C 16, layers 8, classes 10), by hand
# from REFERENCE.md. Per mixed edge with C channels (convolutions have no bias; cell BNs have
# no affine parameters; none / pools / identity have no weights):
#   sep_conv_3x3: 2*(9C + C^2)  sep_conv_5x5: 2*(25C + C^2)
#   dil_conv_3x3: 9C + C^2      dil_conv_5x5: 25C + C^2
#   -> stride-1 edge: 102C + 6C^2; a stride-2 edge adds skip = FactorizedReduce: 2*(C*C/2) = C^2
#   normal cell edges: 14*(102C + 6C^2); reduction cell: the same + 8*C^2 (8 edges from s0/s1)
#   preprocess0: C_pp*C (ReLUConvBN 1x1 and FactorizedReduce both give C_pp*C), preprocess1: C_p*C
# stem: conv 3*48*9 = 1296, BN affine 2*48 = 96                                ->     1,392
# cell 0 normal C=16 (C_pp 48, C_p 48):  pre 768+768     + edges 44,352        ->    45,888
# cell 1 normal C=16 (C_pp 48, C_p 64):  pre 768+1024    + edges 44,352        ->    46,144
# cell 2 reduce C=32 (C_pp 64, C_p 64):  pre 2048+2048   + edges 131,712+8,192 ->   144,000
# cell 3 normal C=32 (FR 64, C_p 128):   pre 2048+4096   + edges 131,712       ->   137,856
# cell 4 normal C=32 (C_pp 128, C_p 128):pre 4096+4096   + edges 131,712       ->   139,904
# cell 5 reduce C=64 (C_pp 128, C_p 128):pre 8192+8192   + edges 435,456+32,768->   484,608
# cell 6 normal C=64 (FR 128, C_p 256):  pre 8192+16384  + edges 435,456       ->   460,032
# cell 7 normal C=64 (C_pp 256, C_p 256):pre 16384+16384 + edges 435,456       ->   468,224
# classifier: 256*10 + 10                                                      ->     2,570
# total                                                                        -> 1,930,618
# ----------------------------------------------------------------------------------------
# evaluation network: NetworkCIFAR of the DARTS authors' model.py, same module structure
# (so the same state_dict names), generalised to the input channels and size
# ----------------------------------------------------------------------------------------
def drop_path(x, drop_prob):
    """Per-sample Bernoulli(1-p) mask, output divided by the keep probability (model.py)."""
    if drop_prob > 0.0:
        keep = 1.0 - drop_prob
        mask = torch.empty(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
        x = x.div(keep) * mask
    return x


class EvalCell(nn.Module):
    """model.py Cell: ops of the genotype (affine BN, no BN after pools), op j on state
    indices[j], stride 2 iff reduction and input < 2; drop path on non-identity ops."""

    def __init__(self, genotype, C_pp, C_p, C, reduction, reduction_prev):
        super().__init__()
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_pp, C, affine=True)
        else:
            self.preprocess0 = ReLUConvBN(C_pp, C, 1, 1, 0, affine=True)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=True)
        key = "reduce" if reduction else "normal"
        op_names, indices = zip(*genotype[key])
        self._steps = len(op_names) // 2
        self._concat = list(genotype.get(key + "_concat", range(2, 2 + self._steps)))
        self.multiplier = len(self._concat)
        self._ops = nn.ModuleList()
        for name, index in zip(op_names, indices):
            stride = 2 if reduction and index < 2 else 1
            self._ops.append(make_op(name, C, stride, affine=True))
        self._indices = indices

    def forward(self, s0, s1, drop_prob):
        s0 = self.preprocess0(s0)
        s1 = self.preprocess1(s1)
        states = [s0, s1]
        for i in range(self._steps):
            h1 = states[self._indices[2 * i]]
            h2 = states[self._indices[2 * i + 1]]
            op1, op2 = self._ops[2 * i], self._ops[2 * i + 1]
            h1, h2 = op1(h1), op2(h2)
            if self.training and drop_prob > 0.0:
                if not isinstance(op1, Identity):
                    h1 = drop_path(h1, drop_prob)
                if not isinstance(op2, Identity):
                    h2 = drop_path(h2, drop_prob)
            states.append(h1 + h2)
        return torch.cat([states[i] for i in self._concat], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    """model.py AuxiliaryHeadCIFAR (written for an 8x8 input). Generalised as dartsc does
    for other sizes: the 2x2 conv becomes min(2, pooled size), and a map left larger than
    1x1 is averaged before the classifier. ReLUs are not in place (model.py's in-place
    first ReLU rewrites s1 with relu(s1), which every later consumer of s1 starts with a
    ReLU of, so values and gradients are the same)."""

    def __init__(self, C, num_classes, hw=8):
        super().__init__()
        pooled = (hw - 5) // 3 + 1
        k = min(2, pooled)
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, k, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=False),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        x = self.features(x)
        if x.shape[2] * x.shape[3] != 1:
            x = F.adaptive_avg_pool2d(x, 1)
        return self.classifier(x.view(x.size(0), -1))


class NetworkCIFAR(nn.Module):
    def __init__(self, C, num_classes, layers, auxiliary, genotype, in_c=3, hw=32, stem_mult=3):
        super().__init__()
        self._layers = layers
        self._auxiliary = auxiliary
        self.drop_path_prob = 0.0
        C_curr = stem_mult * C
        self.stem = nn.Sequential(nn.Conv2d(in_c, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_pp, C_p, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        C_aux, hw_aux = None, hw
        for i in range(layers):
            if i in [layers // 3, 2 * layers // 3]:
                C_curr *= 2
                reduction = True
                hw //= 2
            else:
                reduction = False
            cell = EvalCell(genotype, C_pp, C_p, C_curr, reduction, reduction_prev)
            reduction_prev = reduction
            self.cells.append(cell)
            C_pp, C_p = C_p, cell.multiplier * C_curr
            if i == 2 * layers // 3:
                C_aux, hw_aux = C_p, hw
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(C_aux, num_classes, hw_aux)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)

    def forward(self, x):
        logits_aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == 2 * self._layers // 3 and self._auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        out = self.global_pooling(s1)
        return self.classifier(out.view(out.size(0), -1)), logits_aux


def _genotype_arg(s):
    import json
    g = json.loads(s)
    for k in ("normal", "reduce"):
        if k not in g or len(g[k]) % 2:
            raise RefError("--genotype: '%s' must list (op, input) pairs, 2 per node" % k)
        for name, idx in g[k]:
            if name not in PRIMITIVES or name == "none":
                raise RefError("--genotype: unknown op '%s'" % name)
    return g


def _eval_counts(net):
    n_all = weight_count(net)
    n_noaux = sum(p.numel() for n, p in net.named_parameters() if "auxiliary" not in n)
    return n_all, n_noaux


def run_eval(args):
    dt = torch.float64 if args.double else torch.float32
    gen = _genotype_arg(args.genotype)
    inp = tensorfile.read(args.inp)
    imgs = inp.get("images")
    if imgs is None or imgs.ndim != 4 or imgs.shape[1] != args.in_c:
        raise RefError("%s: 'images' must be (N, %d, H, W), got %s" %
                       (args.inp, args.in_c, None if imgs is None else list(imgs.shape)))
    N = imgs.shape[0]
    net = NetworkCIFAR(args.C, args.classes, args.layers, args.auxiliary, gen, args.in_c, imgs.shape[2],
                       args.stem_mult)
    load_strict(net, inp, {"images": None, "labels": (N,)}, args.inp)
    labels = torch.from_numpy(inp["labels"].astype(np.int64))
    net = net.to(dt).train(args.train)
    net.drop_path_prob = args.drop_path_prob
    torch.manual_seed(args.seed)
    logits, logits_aux = net(torch.from_numpy(imgs).to(dt))
    loss = F.cross_entropy(logits, labels)
    if logits_aux is not None:
        loss = loss + args.aux_weight * F.cross_entropy(logits_aux, labels)
    running = [(n, f32(v)) for n, v in exchange_state(net).items()
               if n.endswith("running_mean") or n.endswith("running_var")]
    net.zero_grad(set_to_none=True)
    loss.backward()
    n_all, n_noaux = _eval_counts(net)
    out = [("logits", f32(logits)), ("loss", f32(loss).reshape(1)),
           ("count/weights", np.array([n_all], dtype=np.int32)),
           ("count/weights_no_aux", np.array([n_noaux], dtype=np.int32))]
    if logits_aux is not None:
        out.append(("aux_logits", f32(logits_aux)))
    for n, p in net.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        out.append(("grad/" + n, f32(g)))
    out += [("running/" + n, v) for n, v in running]
    tensorfile.write(args.out, out)
    if args.verbose:
        print("loss %.8g  weights %d (%d without aux)  tensors %d" % (loss.item(), n_all, n_noaux, len(out)))


def run_eval_count(args):
    gen = _genotype_arg(args.genotype)
    net = NetworkCIFAR(args.C, args.classes, args.layers, args.auxiliary, gen, args.in_c, args.hw, args.stem_mult)
    n_all, n_noaux = _eval_counts(net)
    if args.out:
        tensorfile.write(args.out, [("count/weights", np.array([n_all], dtype=np.int32)),
                                    ("count/weights_no_aux", np.array([n_noaux], dtype=np.int32))])
    print("weights %d  without auxiliary head %d" % (n_all, n_noaux))


CIFAR_SUPERNET_WEIGHTS = 1930618


def hand_count(in_c, C, classes, layers, steps=4, multiplier=4, stem_mult=3):
    def edge(c, stride):
        n = 2 * (9 * c + c * c) + 2 * (25 * c + c * c) + (9 * c + c * c) + (25 * c + c * c)
        return n + (c * c if stride == 2 else 0)

    total = in_c * stem_mult * C * 9 + 2 * stem_mult * C
    C_pp = C_p = stem_mult * C
    C_cur = C
    for i in range(layers):
        red = i in (layers // 3, 2 * layers // 3)
        if red:
            C_cur *= 2
        total += C_pp * C_cur + C_p * C_cur
        for n in range(steps):
            for j in range(2 + n):
                total += edge(C_cur, 2 if red and j < 2 else 1)
        C_pp, C_p = C_p, multiplier * C_cur
    return total + C_p * classes + classes


def selftest(args):
    torch.set_num_threads(max(1, args.threads))
    fails = []

    def check(ok, what):
        print("%s  %s" % ("PASS" if ok else "FAIL", what))
        if not ok:
            fails.append(what)

    # (a) the weight count
    net = Network(3, 16, 10, 8)
    n = weight_count(net)
    check(n == CIFAR_SUPERNET_WEIGHTS == hand_count(3, 16, 10, 8),
          "CIFAR supernet weight count %d (hand: %d, formula: %d)" %
          (n, CIFAR_SUPERNET_WEIGHTS, hand_count(3, 16, 10, 8)))
    for cfg in [(1, 4, 10, 5), (3, 8, 7, 6), (3, 6, 10, 11)]:
        m = weight_count(Network(*cfg))
        check(m == hand_count(*cfg), "weight count %s: %d vs formula %d" % (cfg, m, hand_count(*cfg)))
    sd = exchange_state(net)
    for name in ["stem.0.weight", "stem.1.bias", "cells.0.preprocess0.op.1.weight",
                 "cells.3.preprocess0.conv_2.weight", "cells.3.preprocess0.bn.running_var",
                 "cells.2._ops.0._ops.3.conv_1.weight", "cells.2._ops.2._ops.1.1.running_mean",
                 "cells.2._ops.13._ops.4.op.7.running_var", "cells.7._ops.13._ops.7.op.3.running_mean",
                 "cells.1._ops.5._ops.5.op.6.weight", "classifier.bias"]:
        check(name in sd, "state_dict has %s" % name)
    check("cells.2._ops.4._ops.3.conv_1.weight" not in sd, "stride-1 skip in a reduction cell is identity")
    check(tuple(net.alphas_normal.shape) == (14, 8) and all(
        "alphas" not in k for k, _ in net.named_parameters()), "alphas 14x8 and not parameters")
    check(all("num_batches_tracked" not in k for k in sd), "num_batches_tracked excluded")

    # (b) mixed op equals the formula, independently of MixedOp.forward
    torch.manual_seed(1)
    mo = MixedOp(4, 1).double().train()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    a = torch.randn(8, dtype=torch.float64)
    w = F.softmax(a, dim=0)
    ref = sum(w[i] * mo._ops[i](x) for i in range(1, 8))  # none contributes 0
    check(torch.allclose(mo(x, w), ref, atol=1e-12), "mixed op = sum softmax * op (none = 0)")

    # (c) gradcheck (float64) of tiny cells, w.r.t. alphas, s0, s1 and one weight
    for red, red_prev in [(0, 0), (1, 0), (0, 1)]:
        torch.manual_seed(2 + red + 2 * red_prev)
        C = 2
        cell = Cell(4, 4, 3, 4, C, bool(red), bool(red_prev)).double().train()
        hw = 4
        s0 = torch.randn(2, 3, 2 * hw if red_prev else hw, 2 * hw if red_prev else hw,
                         dtype=torch.float64, requires_grad=True)
        s1 = torch.randn(2, 4, hw, hw, dtype=torch.float64, requires_grad=True)
        al = torch.randn(14, 8, dtype=torch.float64, requires_grad=True)
        wname = "_ops.0._ops.4.op.1.weight"
        wt = dict(cell.named_parameters())[wname]
        r = torch.randn(2, 4 * C, hw // 2 if red else hw, hw // 2 if red else hw, dtype=torch.float64)

        def f(al_, s0_, s1_, wt_):
            # route the weight through autograd: functional replacement of the parameter
            return _cell_with_weight(cell, wname, wt_, s0_, s1_, F.softmax(al_, -1), r)

        wt0 = wt.detach().clone().requires_grad_(True)
        try:
            ok = torch.autograd.gradcheck(f, (al, s0, s1, wt0), eps=1e-6, atol=1e-5, rtol=1e-4)
        except Exception as e:  # gradcheck raises on mismatch
            print(str(e)[:2000])
            ok = False
        check(ok, "gradcheck cell reduction=%d reduction_prev=%d" % (red, red_prev))

    # (d) alpha gradient of the whole (tiny) net against a central difference, float64
    torch.manual_seed(5)
    tn = Network(1, 4, 10, 3).double().train()
    xin = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    lab = torch.tensor([1, 5, 9])
    tn.alphas_normal = tn.alphas_normal.double().requires_grad_(True)
    tn.alphas_reduce = tn.alphas_reduce.double()
    F.cross_entropy(tn(xin), lab).backward()
    g = tn.alphas_normal.grad.clone()
    d = torch.randn_like(g)
    h = 1e-5
    with torch.no_grad():
        base = tn.alphas_normal.detach().clone()
        tn.alphas_normal = base + h * d
        lp = F.cross_entropy(tn(xin), lab).item()
        tn.alphas_normal = base - h * d
        lm = F.cross_entropy(tn(xin), lab).item()
    fd = (lp - lm) / (2 * h)
    an = (g * d).sum().item()
    check(abs(fd - an) <= 1e-7 + 1e-5 * abs(an), "net d loss/d alphas_normal: autograd %.10g vs FD %.10g" % (an, fd))

    # (e) second-order alpha gradient (finite-difference Hessian-vector product) against the
    #     exact one from double backward, float64, tiny net, eta large enough that the implicit
    #     term matters (so the (g+ - g-)/2*R bug would fail). DARTS uses R = 0.01/|v|; on a tiny
    #     net that step crosses many ReLU / max-pool kinks and the central difference is far from
    #     the exact Hessian-vector product, so the check uses R = 1e-6/|v| (same code path).
    import argparse as _ap
    import tempfile
    from torch.nn.utils import stateless
    with tempfile.TemporaryDirectory() as td:
        ia = _ap.Namespace(out=os.path.join(td, "in.dtns"), in_c=1, C=4, classes=10, layers=3,
                           steps=4, multiplier=4, stem_mult=3, batch=3, hw=8, seed=7, val=True,
                           momentum_bufs=True)
        run_init(ia)
        eta, mom, wd = 0.5, 0.9, 3e-4
        ga = _ap.Namespace(inp=ia.out, out=os.path.join(td, "out.dtns"), in_c=1, C=4, classes=10,
                           layers=3, steps=4, multiplier=4, stem_mult=3, order=2, eta=eta,
                           momentum=mom, wd=wd, hvp_r=1e-6, double=True, verbose=False)
        got = [g.detach() for g in run_archgrad(ga)]
        inp = tensorfile.read(ia.out)
        en = Network(1, 4, 10, 3).double().train()
        load_strict(en, inp, dict((k, None) for k in inp if k not in exchange_state(en)), ia.out)
        an = torch.from_numpy(inp["alphas_normal"]).double().requires_grad_(True)
        ar = torch.from_numpy(inp["alphas_reduce"]).double().requires_grad_(True)
        en.alphas_normal, en.alphas_reduce = an, ar
        xt = torch.from_numpy(inp["images"]).double()
        yt = torch.from_numpy(inp["labels"].astype(np.int64))
        xv = torch.from_numpy(inp["images_val"]).double()
        yv = torch.from_numpy(inp["labels_val"].astype(np.int64))
        names = [n for n, _ in en.named_parameters()]
        ps = [p for _, p in en.named_parameters()]
        gw = torch.autograd.grad(F.cross_entropy(en(xt), yt), ps, create_graph=True)
        wv = {}
        for n, p, g in zip(names, ps, gw):
            b = torch.from_numpy(inp["momentum/" + n]).double()
            wv[n] = p.detach() - eta * (mom * b + g + wd * p.detach())
        lv = F.cross_entropy(stateless.functional_call(en, wv, (xv,)), yv)
        exact = torch.autograd.grad(lv, [an, ar])
        wdet = dict((n, t.detach()) for n, t in wv.items())  # dalpha alone (no implicit term)
        first = torch.autograd.grad(F.cross_entropy(stateless.functional_call(en, wdet, (xv,)), yv),
                                    [an, ar])
        e_rel = max(float((a - b).norm() / b.norm()) for a, b in zip(got, exact))
        imp_rel = min(float((a - b).norm() / b.norm()) for a, b in zip(first, exact))
        check(e_rel < 1e-3 and imp_rel > 100 * e_rel,
              "second-order alpha gradient vs exact: rel err %.2e (dalpha alone is off by %.2e)"
              % (e_rel, imp_rel))

    # (f) tensorfile roundtrip
    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, "t.dtns")
        items = [("a", np.arange(5, dtype=np.float32)), ("b", np.array([[1, -2]], dtype=np.int32)),
                 ("s", np.array(1.5, dtype=np.float32))]
        tensorfile.write(p, items)
        back = tensorfile.read(p)
        check(list(back) == ["a", "b", "s"] and all(np.array_equal(back[k], v) for k, v in items)
              and back["b"].dtype == np.int32, "tensorfile roundtrip")
        raw = bytearray(open(p, "rb").read())
        raw[20] ^= 4
        open(p, "wb").write(raw)
        try:
            tensorfile.read(p)
            check(False, "tensorfile refuses a flipped bit")
        except tensorfile.TensorFileError as e:
            check("CRC" in str(e), "tensorfile refuses a flipped bit (%s)" % e)

    print("selftest: %s" % ("PASS" if not fails else "FAIL (%d)" % len(fails)))
    return 0 if not fails else 1


def _cell_with_weight(cell, wname, wt, s0, s1, weights, r):
    """Run `cell` with parameter `wname` replaced by the tensor wt (keeps it in the graph)."""
    mod = cell
    parts = wname.split(".")
    for p in parts[:-1]:
        mod = getattr(mod, p) if not p.isdigit() else mod[int(p)]
    saved = mod._parameters[parts[-1]]
    del mod._parameters[parts[-1]]
    setattr(mod, parts[-1], wt)
    try:
        out = cell(s0, s1, weights)
    finally:
        delattr(mod, parts[-1])
        mod._parameters[parts[-1]] = saved
    return (out * r).sum()


# ----------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)

    def common(p, threads=True):
        p.add_argument("--steps", type=int, default=4)
        p.add_argument("--multiplier", type=int, default=4)
        if threads:
            p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")

    p = sub.add_parser("net", help="supernet forward/backward")
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--in-c", dest="in_c", type=int, default=3)
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--stem-mult", dest="stem_mult", type=int, default=3)
    p.add_argument("--double", action="store_true", help="compute in float64 (outputs still f32)")
    p.add_argument("-v", "--verbose", action="store_true")
    common(p)

    p = sub.add_parser("cell", help="one search cell, loss = sum(out * r)")
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--C", type=int, required=True)
    p.add_argument("--reduction", type=int, choices=[0, 1], required=True)
    p.add_argument("--reduction-prev", dest="reduction_prev", type=int, choices=[0, 1], required=True)
    p.add_argument("--C-pp", dest="C_pp", type=int, required=True)
    p.add_argument("--C-p", dest="C_p", type=int, required=True)
    p.add_argument("--double", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    common(p)

    p = sub.add_parser("archgrad", help="alpha gradient of one first/second-order DARTS step")
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--in-c", dest="in_c", type=int, default=3)
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--stem-mult", dest="stem_mult", type=int, default=3)
    p.add_argument("--order", type=int, choices=[1, 2], default=2)
    p.add_argument("--eta", type=float, default=0.025, help="current weight learning rate (xi)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--wd", type=float, default=3e-4)
    p.add_argument("--hvp-r", dest="hvp_r", type=float, default=0.01,
                   help="R = hvp_r / ||v|| (DARTS: 0.01)")
    p.add_argument("--double", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    common(p)

    p = sub.add_parser("init", help="random input file for `net`")
    p.add_argument("--out", required=True)
    p.add_argument("--in-c", dest="in_c", type=int, default=3)
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--stem-mult", dest="stem_mult", type=int, default=3)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--hw", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val", action="store_true", help="also images_val/labels_val (for archgrad)")
    p.add_argument("--momentum-bufs", dest="momentum_bufs", action="store_true",
                   help="also momentum/<param> = 0.01 N(0,1) (for archgrad)")
    common(p, threads=False)

    p = sub.add_parser("init-cell", help="random input file for `cell`")
    p.add_argument("--out", required=True)
    p.add_argument("--C", type=int, required=True)
    p.add_argument("--reduction", type=int, choices=[0, 1], required=True)
    p.add_argument("--reduction-prev", dest="reduction_prev", type=int, choices=[0, 1], required=True)
    p.add_argument("--C-pp", dest="C_pp", type=int, required=True)
    p.add_argument("--C-p", dest="C_p", type=int, required=True)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--hw", type=int, default=8, help="spatial size of s1 (s0 is 2x when reduction-prev)")
    p.add_argument("--alpha-scale", dest="alpha_scale", type=float, default=1.0,
                   help="alphas = scale * N(0,1) (default 1, so that all ops matter)")
    p.add_argument("--seed", type=int, default=0)
    common(p, threads=False)

    def eval_common(p):
        p.add_argument("--in-c", dest="in_c", type=int, default=3)
        p.add_argument("--C", type=int, default=36)
        p.add_argument("--classes", type=int, default=10)
        p.add_argument("--layers", type=int, default=20)
        p.add_argument("--stem-mult", dest="stem_mult", type=int, default=3)
        p.add_argument("--genotype", required=True,
                       help='JSON, DARTS Genotype layout: {"normal": [["sep_conv_3x3", 0], ...], '
                            '"normal_concat": [2, 3, 4, 5], "reduce": [...], "reduce_concat": [...]}')
        p.add_argument("--auxiliary", action="store_true", help="auxiliary head after cell 2*layers//3")

    p = sub.add_parser("eval", help="evaluation network (NetworkCIFAR) forward/backward")
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    eval_common(p)
    p.add_argument("--train", action="store_true", help="training mode (batch-stat BN, aux loss, drop path)")
    p.add_argument("--aux-weight", dest="aux_weight", type=float, default=0.4)
    p.add_argument("--drop-path-prob", dest="drop_path_prob", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0, help="torch seed (drop path masks)")
    p.add_argument("--double", action="store_true", help="compute in float64 (outputs still f32)")
    p.add_argument("-v", "--verbose", action="store_true")
    common(p)

    p = sub.add_parser("eval-count", help="weight count of the evaluation network")
    p.add_argument("--out", default=None)
    p.add_argument("--hw", type=int, default=32)
    eval_common(p)
    common(p)

    p = sub.add_parser("selftest", help="weight count + gradcheck")
    p.add_argument("--threads", type=int, default=1)

    args = ap.parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(max(1, args.threads))
    try:
        if args.mode == "net":
            run_net(args)
        elif args.mode == "cell":
            run_cell(args)
        elif args.mode == "eval":
            run_eval(args)
        elif args.mode == "eval-count":
            run_eval_count(args)
        elif args.mode == "archgrad":
            run_archgrad(args)
        elif args.mode == "init":
            run_init(args)
        elif args.mode == "init-cell":
            run_init_cell(args)
        elif args.mode == "selftest":
            return selftest(args)
    except (RefError, tensorfile.TensorFileError) as e:
        sys.stderr.write("darts_ref: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
