#!/usr/bin/env python3
"""torch_step.py - the PyTorch side of bench/run.sh: one DARTS search step of the same
supernet as `dartsc bench` (tests/ref/darts_ref.py's Network, the reference structure),
first order (alpha step: grad of L_val w.r.t. alpha; then the weight step with SGD) or
second order (the unrolled step of the reference Architect: virtual step, gradients at w',
finite-difference Hessian-vector product with R = 0.01/||v||), on random data.
With --retrain, one retraining step of the evaluation network instead (the reference
NetworkCIFAR with the DARTS_V2 genotype, auxiliary head and drop path as given; forward,
CE + aux_weight * CE_aux, backward, clip 5, SGD), as bench/retrain_step times dartsc's.
Prints one JSON line: median seconds per step after warm-up, images/s, peak RSS, and with
--device cuda (cudnn.benchmark on, as a PyTorch user would run it; each step ends with a
device synchronisation before the clock is read) the allocator's peak device memory.
"""
import argparse
import json
import os
import resource
import sys
import time

if os.environ.get("TORCH_STEP_WAIT") != "default":  # bench/run.sh: OMP_WAIT_POLICY=default
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import darts_ref  # noqa: E402


def time_steps(a, step):
    """Runs step warmup + steps times (each ended by a device synchronisation on CUDA);
    returns the median of the timed steps and their sorted times."""
    times = []
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        step()
        if a.device == "cuda":
            torch.cuda.synchronize()
        if s >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    n = len(times)
    return (times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])), times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="darts_cifar10", help="label printed in the JSON line")
    ap.add_argument("--in-c", type=int, default=3)
    ap.add_argument("--hw", type=int, default=32)
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--order", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--retrain", action="store_true", help="time retraining steps of DARTS_V2's network")
    ap.add_argument("--aux", type=float, default=0.4, help="--retrain: auxiliary loss weight (0: no head)")
    ap.add_argument("--drop-path", type=float, default=0.2, help="--retrain: drop path probability")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    if a.device == "cuda":
        torch.backends.cudnn.benchmark = True
    if a.retrain:
        return retrain(a, dev)
    net = darts_ref.Network(a.in_c, a.C, a.classes, a.layers).train().to(dev)
    # the architecture weights are plain tensors, not module parameters: .to() leaves them
    net.alphas_normal = net.alphas_normal.to(dev)
    net.alphas_reduce = net.alphas_reduce.to(dev)
    alphas = [net.alphas_normal.requires_grad_(True), net.alphas_reduce.requires_grad_(True)]
    wopt = torch.optim.SGD(net.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    aopt = torch.optim.Adam(alphas, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    xt = torch.randn(a.batch, a.in_c, a.hw, a.hw, device=dev)
    xv = torch.randn(a.batch, a.in_c, a.hw, a.hw, device=dev)
    yt = torch.randint(0, a.classes, (a.batch,), device=dev)
    yv = torch.randint(0, a.classes, (a.batch,), device=dev)
    params = list(net.parameters())
    eta = 0.025

    def loss(x, y):
        return F.cross_entropy(net(x), y)

    def second_order():
        # virtual step w' = w - eta (momentum buf + g + wd w)
        g = torch.autograd.grad(loss(xt, yt), params)
        backup = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, gi in zip(params, g):
                buf = wopt.state[p].get("momentum_buffer") if p in wopt.state else None
                m = buf * 0.9 if buf is not None else 0
                p.sub_(eta * (m + gi + 3e-4 * p))
        lv = loss(xv, yv)
        grads = torch.autograd.grad(lv, alphas + params)
        dalpha, v = grads[:2], grads[2:]
        R = 0.01 / torch.cat([x.view(-1) for x in v]).norm()
        with torch.no_grad():
            for p, b, vi in zip(params, backup, v):
                p.copy_(b + R * vi)
        gp = torch.autograd.grad(loss(xt, yt), alphas)
        with torch.no_grad():
            for p, b, vi in zip(params, backup, v):
                p.copy_(b - R * vi)
        gm = torch.autograd.grad(loss(xt, yt), alphas)
        with torch.no_grad():
            for p, b in zip(params, backup):
                p.copy_(b)
        for al, da, p_, m_ in zip(alphas, dalpha, gp, gm):
            al.grad = da - eta * (p_ - m_) / (2 * R)

    def step():
        aopt.zero_grad()
        if a.order == 1:
            torch.autograd.backward(loss(xv, yv), inputs=alphas)
        else:
            second_order()
        aopt.step()
        wopt.zero_grad()
        loss(xt, yt).backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        wopt.step()

    med, times = time_steps(a, step)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {"impl": "pytorch", "torch": torch.__version__, "space": a.space, "batch": a.batch, "order": a.order,
           "threads": a.threads, "device": a.device, "median_s": round(med, 4), "min_s": round(times[0], 4),
           "images_per_s": round(a.batch / med, 2), "peak_rss_mb": round(rss, 1)}
    if a.device == "cuda":
        out["peak_device_alloc_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["peak_device_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
        out["gpu"] = torch.cuda.get_device_name(0)
    print(json.dumps(out))


DARTS_V2 = {"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
                       ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]],
            "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
                       ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]]}


def retrain(a, dev):
    net = darts_ref.NetworkCIFAR(a.C, a.classes, a.layers, a.aux > 0, DARTS_V2, a.in_c, a.hw).train().to(dev)
    net.drop_path_prob = a.drop_path
    opt = torch.optim.SGD(net.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    x = torch.randn(a.batch, a.in_c, a.hw, a.hw, device=dev)
    y = torch.randint(0, a.classes, (a.batch,), device=dev)
    def step():
        opt.zero_grad()
        logits, logits_aux = net(x)
        loss = F.cross_entropy(logits, y)
        if logits_aux is not None:
            loss = loss + a.aux * F.cross_entropy(logits_aux, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()

    med, times = time_steps(a, step)
    out = {"impl": "pytorch", "what": "retrain", "torch": torch.__version__, "space": a.space, "device": a.device,
           "C": a.C, "layers": a.layers, "batch": a.batch, "drop_path": a.drop_path, "aux": int(a.aux > 0),
           "median_s": round(med, 4), "min_s": round(times[0], 4), "images_per_s": round(a.batch / med, 1)}
    if a.device == "cuda":
        out["peak_device_alloc_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
