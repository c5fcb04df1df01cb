#!/usr/bin/env python3
"""rnn_ref.py - an independent PyTorch implementation of the DARTS recurrent language
model (the authors' rnn/model_search.py DARTSCellSearch and rnn/model.py DARTSCell, one
layer, tied embedding), for tests/test_rnn.c.

It reads dartsc's parameters and one BPTT window from a tensor file (tensorfile.py),
runs the window in training mode without dropout (BN with batch statistics in the
search cell, updating its running statistics), and writes the loss (mean cross-entropy
over the T * B targets), the final hidden state and every parameter gradient in dartsc's
names and layouts (_W0 and _Ws are stored transposed in dartsc: (2 nhid, in)).

usage: rnn_ref.py --in IN.dtns --out OUT.dtns --nodes N [--genotype tanh:0,relu:1,...] [--double]
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tensorfile  # noqa: E402

PRIMITIVES = ["none", "tanh", "relu", "sigmoid", "identity"]


def act(name, x):
    if name == "tanh":
        return x.tanh()
    if name == "relu":
        return x.relu()
    if name == "sigmoid":
        return x.sigmoid()
    if name == "identity":
        return x
    raise ValueError(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--nodes", type=int, required=True)
    ap.add_argument("--genotype", default=None)
    ap.add_argument("--tar", type=float, default=0.0)
    ap.add_argument("--double", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    dt = torch.float64 if a.double else torch.float32
    t = tensorfile.read(a.inp)

    def param(name, transpose=False):
        x = torch.tensor(t[name], dtype=dt)
        if transpose:
            x = x.t().contiguous()
        return x.requires_grad_(True)

    enc = param("encoder.weight")          # (V, H)
    dec_b = param("decoder.bias")          # (V)
    W0 = param("rnns.0._W0", True)         # (ninp + nhid, 2 nhid) as the reference
    steps = a.nodes
    Ws = [param("rnns.0._Ws.%d" % i, True) for i in range(steps)]  # (nhid, 2 nhid)
    search = a.genotype is None
    H = enc.shape[1]
    if search:
        alpha = param("weights")
        bn = torch.nn.BatchNorm1d(H, affine=False, eps=1e-5, momentum=0.1).to(dt)
        bn.running_mean.copy_(torch.tensor(t["rnns.0.bn.running_mean"], dtype=dt))
        bn.running_var.copy_(torch.tensor(t["rnns.0.bn.running_var"], dtype=dt))
        bn.train()
    else:
        geno = [(s.split(":")[0], int(s.split(":")[1])) for s in a.genotype.split(",")]
    ids = torch.tensor(t["ids"]).long()          # (T, B)
    targets = torch.tensor(t["targets"]).long()  # (T, B)
    hidden = torch.tensor(t["hidden"], dtype=dt)  # (B, H)

    def init_state(x, h_prev):
        xh = torch.cat([x, h_prev], dim=-1)
        c0, h0 = torch.split(xh.mm(W0), H, dim=-1)
        return h_prev + c0.sigmoid() * (h0.tanh() - h_prev)

    def cell_search(x, h_prev):
        s0 = bn(init_state(x, h_prev))
        probs = F.softmax(alpha, dim=-1)
        offset = 0
        states = s0.unsqueeze(0)
        for i in range(steps):
            ch = states.view(-1, H).mm(Ws[i]).view(i + 1, -1, 2 * H)
            c, h = torch.split(ch, H, dim=-1)
            c = c.sigmoid()
            s = torch.zeros_like(s0)
            for k, name in enumerate(PRIMITIVES):
                if name == "none":
                    continue
                unweighted = states + c * (act(name, h) - states)
                s = s + torch.sum(probs[offset:offset + i + 1, k].unsqueeze(-1).unsqueeze(-1) * unweighted, dim=0)
            s = bn(s)
            states = torch.cat([states, s.unsqueeze(0)], 0)
            offset += i + 1
        return torch.mean(states[-steps:], dim=0)

    def cell_derived(x, h_prev):
        states = [init_state(x, h_prev)]
        for i, (name, pred) in enumerate(geno):
            s_prev = states[pred]
            c, h = torch.split(s_prev.mm(Ws[i]), H, dim=-1)
            states.append(s_prev + c.sigmoid() * (act(name, h) - s_prev))
        return torch.mean(torch.stack(states[1:], -1), -1)

    cell = cell_search if search else cell_derived
    h = hidden
    logits, hs = [], []
    for step in range(ids.shape[0]):
        x = F.embedding(ids[step], enc)
        h = cell(x, h)
        hs.append(h)
        logits.append(h.mm(enc.t()) + dec_b)
    logits = torch.cat(logits, 0)
    loss = F.cross_entropy(logits, targets.reshape(-1))
    if a.tar > 0 and len(hs) > 1:  # temporal activation regularisation, as train_search.py
        rnn_h = torch.stack(hs)
        loss = loss + a.tar * (rnn_h[1:] - rnn_h[:-1]).pow(2).mean()
    loss.backward()

    out = [("loss", loss.detach().reshape(1)), ("hidden_out", h.detach())]
    out.append(("grad/encoder.weight", enc.grad))
    out.append(("grad/decoder.bias", dec_b.grad))
    out.append(("grad/rnns.0._W0", W0.grad.t()))
    for i in range(steps):
        out.append(("grad/rnns.0._Ws.%d" % i, Ws[i].grad.t()))
    if search:
        out.append(("grad/weights", alpha.grad))
        out.append(("running/rnns.0.bn.running_mean", bn.running_mean))
        out.append(("running/rnns.0.bn.running_var", bn.running_var))
    tensorfile.write(a.out, [(k, v.detach().to(torch.float32).contiguous().numpy()) for k, v in out])


if __name__ == "__main__":
    main()
